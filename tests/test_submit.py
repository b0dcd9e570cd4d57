"""``colorstyle submit`` against a real Ray head started with ``ray start`` (Jobs API over HTTP)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import free_port

from jobs.cli import main


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory, ray_session):
    """A one-node cluster with the dashboard (Jobs API); the venv's bin first on PATH, as the
    Jobs API runs the entrypoint with the cluster's Python (../shared/NOTES.md)."""
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        pytest.skip("the ray CLI is not installed next to this Python")
    ray_session.release()  # this module's jobs run on a cluster of its own
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PATH=f"{ray_bin.parent}:{os.environ['PATH']}")
    env.pop("RAY_ADDRESS", None)
    port, dash = free_port(), free_port()
    temp = tmp_path_factory.mktemp("ray")
    start = [str(ray_bin), "start", "--head", f"--port={port}", f"--dashboard-port={dash}",
             "--dashboard-host=127.0.0.1", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=true",
             f"--temp-dir={temp}", "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    address = f"http://127.0.0.1:{dash}"
    try:
        from ray.job_submission import JobSubmissionClient

        deadline = time.time() + 60
        while True:
            try:
                JobSubmissionClient(address).list_jobs()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        yield address, env
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_submit_runs_the_manifest_on_the_cluster(ray_head, shared, tmp_path, monkeypatch, capsys):
    address, env = ray_head
    for key in ("RAY_AUTH_MODE", "PATH"):
        monkeypatch.setenv(key, env[key])
    photos = tmp_path / "in"
    photos.mkdir()
    for stem in ("coffee", "chelsea_cat"):
        shutil.copy(shared / "data" / "gray" / f"{stem}.jpg", photos / f"{stem}.jpg")
    manifest = tmp_path / "job.yaml"
    manifest.write_text(textwrap.dedent(f"""
        inputs: [{photos}/]
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 1}}
    """))
    assert main(["submit", str(manifest), "--address", address]) == 0
    captured = capsys.readouterr()
    assert "SUCCEEDED" in captured.err
    assert "frames/images processed" in captured.out  # the job's own log, followed
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["chelsea_cat.png", "coffee.png"]

    assert main(["submit", str(manifest), "--address", address, "--no-wait"]) == 0
    job_id = capsys.readouterr().out.strip()
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.time() + 120
    while client.get_job_status(job_id) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.time() < deadline
        time.sleep(1)
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED
    assert "nothing to do" in client.get_job_logs(job_id)  # the rerun resumed: nothing done, nothing written


def test_submit_refuses_an_invalid_manifest_before_sending(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [a/]\noutput: {prefix: o/}\npipeline: {colorize: {}}\nworkers: 3\n")
    assert main(["submit", str(bad), "--address", "http://127.0.0.1:9"]) == 2
    assert "bad.yaml:4: workers: unknown key" in capsys.readouterr().err
