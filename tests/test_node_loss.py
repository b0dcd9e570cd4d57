"""Losing a worker node mid-job, and losing the driver (what the head node's death does to a job).

A real multi-node Ray on this machine (``ray.cluster_utils.Cluster``: a head with no CPUs
and three one-CPU worker nodes). The node that holds an actor is removed while the
actor is working; Ray restarts the actor on the spare node, the scheduler retries the
unit, and the job ends with every output exactly once, identical to an undisturbed run.
The driver's death is a ``colorstyle run`` process killed mid-job; the rerun resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
from PIL import Image

from jobs.actor import PipelineActor
from jobs.driver import EXIT_OK, RunOptions, run_job
from jobs.manifest import parse_manifest
from tests.media import decoded_frames

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster(ray_session):
    from ray.cluster_utils import Cluster

    ray_session.release()  # this module runs its own (multi-node) cluster
    os.environ["RAY_AUTH_MODE"] = "disabled"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [c.add_node(num_cpus=1) for _ in range(3)]
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    yield c, workers
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def photos(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for stem in ("coffee", "chelsea_cat", "lighthouse", "farm_dog"):
        Image.open(shared / "data" / "gray" / f"{stem}.jpg").resize((96, 64)).save(root / f"{stem}.jpg")
    return root


def _manifest(photos: Path, shared: Path, out: Path):
    return parse_manifest(textwrap.dedent(f"""
        inputs: [{photos}/, {{uri: {shared}/data/video/dev_kenburns_gray.gif, frames: {{start: 0, end: 12}}}}]
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 2, cpus_per_actor: 1, images_per_shard: 1, frames_per_range: 4, batch_size: 2,
                     retries: 2}}
    """), "node-loss.yaml")


def stalls_once_actor(marker: Path) -> type:
    """An actor that, the first time any actor of the job starts a unit, writes its node id to ``marker``
    and stalls, so that the test can remove its node while it is working."""

    class StallsOnce(PipelineActor):
        def process(self, unit, attempt, submitted_at):
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return super().process(unit, attempt, submitted_at)
            os.write(fd, self.info_.node_id.encode())
            os.close(fd)
            time.sleep(120)  # the node goes away long before this ends
            return super().process(unit, attempt, submitted_at)

    return StallsOnce


def _outputs(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "_colorstyle" not in p.parts}


def test_removing_the_node_of_a_working_actor_loses_nothing(cluster, photos, shared, tmp_path):
    c, workers = cluster
    calm = run_job(_manifest(photos, shared, tmp_path / "calm"), RunOptions(progress=False))
    assert calm.exit_code == EXIT_OK, calm.failures

    marker = tmp_path / "stalled-on-node"
    removed: list[str] = []

    def remove_the_node() -> None:
        for _ in range(600):
            if marker.exists() and marker.read_text():
                node_id = marker.read_text()
                node = next(n for n in workers if n.node_id == node_id)
                c.remove_node(node, allow_graceful=False)
                removed.append(node_id)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=remove_the_node)
    killer.start()
    report = run_job(_manifest(photos, shared, tmp_path / "lost"),
                     RunOptions(progress=False, actor_class=stalls_once_actor(marker)))
    killer.join()
    assert removed, "the test never saw a working actor to take the node from"
    assert report.exit_code == EXIT_OK, report.failures
    units = pq.read_table(report.written["units"]).to_pylist()
    assert any(u["attempt"] > 1 for u in units)  # the lost unit was done again, elsewhere
    frames = pq.read_table(report.written["frames"])
    keys = list(zip(frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)) == 4 + 12  # every output exactly once
    calm_out, lost_out = _outputs(tmp_path / "calm"), _outputs(tmp_path / "lost")
    assert sorted(calm_out) == sorted(lost_out) == sorted(["coffee.png", "chelsea_cat.png", "lighthouse.png",
                                                           "farm_dog.png", "dev_kenburns_gray.gif"])
    for name, path in calm_out.items():
        if name.endswith(".png"):
            assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(lost_out[name])))
    a, b = decoded_frames(calm_out["dev_kenburns_gray.gif"]), decoded_frames(lost_out["dev_kenburns_gray.gif"])
    assert len(a) == len(b) == 12 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_killed_driver_loses_its_job_and_the_rerun_resumes(photos, shared, tmp_path):
    """The head node's death takes the driver and its Ray with it: the run is lost; what it
    recorded stays, and running the same manifest again finishes the job without redoing it."""
    out = tmp_path / "out"
    manifest = tmp_path / "job.yaml"
    manifest.write_text(textwrap.dedent(f"""
        inputs: [{photos}/, {{uri: {shared}/data/video/dev_kenburns_gray.gif, frames: {{start: 0, end: 12}}}}]
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 1, cpus_per_actor: 1, images_per_shard: 1, frames_per_range: 4, batch_size: 2}}
    """))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(manifest), "--no-progress"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts = out / "_colorstyle"
    try:
        for _ in range(1200):  # kill it as soon as some units are recorded, long before it ends
            if len(list(parts.rglob("parts/units/*.parquet"))) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the job ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, as when the head dies
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = len(list(parts.rglob("parts/units/*.parquet")))
    assert done_before >= 2 and not any(parts.rglob("summary.json"))  # the run died before its summary
    rerun = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(manifest), "--no-progress"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "already done" in rerun.stderr
    assert sorted(_outputs(out)) == sorted(["coffee.png", "chelsea_cat.png", "lighthouse.png", "farm_dog.png",
                                            "dev_kenburns_gray.gif"])
    frames = pq.read_table(next(parts.rglob("frames.parquet")))
    keys = list(zip(frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)) == 4 + 12
    assert len(decoded_frames(out / "dev_kenburns_gray.gif")) == 12
