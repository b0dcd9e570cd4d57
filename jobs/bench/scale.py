"""``python -m jobs.bench.scale``: one driver against a simulated cluster, at archive scale.

Runs the real driver, scheduler, metrics writer and resume on a multi-node Ray cluster
simulated with ``ray.cluster_utils.Cluster`` (``--nodes``, ``--actors`` spread over them),
whose actors run the real actor code with a stand-in frame pipeline (:class:`StandInPipeline`:
each frame back as it came, after ``--sleep-ms``; the models are never built). The inputs are
``--units`` tiny PNG stills on the local disk (``--images-per-unit`` per unit). With
``--storage s3`` the job's metrics prefix (the driver's own storage traffic) lives on a
loopback S3 server (moto, in a process of its own) behind a proxy that waits ``--latency-ms``
before every request, as S3's first byte does; ``--data s3`` puts the stills and outputs there
too (each costs the actors a request; moto spends 8-15 ms of CPU on one, so on this 2-core
machine that measures moto, not the driver). Prints, and with ``--json PATH`` writes, for the N
units: ``plan_s``, ``first_unit_s``, ``units_per_s`` (sustained: the middle 80 % of
completions), ``driver_ms_per_unit`` (the driver process's CPU per unit), ``driver_peak_rss_mb``,
``resume_s`` (a no-op rerun of the finished job), ``consolidate_s`` and ``part_files`` (the most
part files the metrics had during the run). ``--first-unit-only``, for millions of inputs: the driver
runs in a process of its own and is killed once units have run for 30 s; it gives the times to the first
unit planned and the first unit started on an actor, and the driver's peak RSS.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from colorstyle_core.pipeline import FrameResult  # where both layouts (before and after) export it
from colorstyle_core.timing import StageTimer

BUCKET = "colorstyle-scale"


# ---- the stand-in pipeline and actor -------------------------------------------------------------


class StandInPipeline:
    """What a :class:`~colorstyle_core.pipeline.FramePipeline` answers, without models: every frame
    comes back as it came (gray as R = G = B) after ``sleep_s`` seconds per frame, so the actor's own
    code (read, decode, encode, write, metrics rows) runs for real."""

    sleep_s = 0.0
    untrained = True
    weights_text = weights_tag = "stand-in pipeline (jobs.bench.scale)"

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> StandInPipeline:
        """Any :meth:`FramePipeline.build` call: a stand-in (no weights are read)."""
        return cls()

    def timer(self) -> StageTimer:
        return StageTimer(None)

    def process(self, images: Any, hints: Any = None) -> list[FrameResult]:
        """``(1, C, H, W)`` float32 frames in [0, 1] (a list, or one ``(N, C, H, W)`` batch) back as sRGB."""
        batch = list(images.split(1)) if hasattr(images, "split") else list(images)
        time.sleep(self.sleep_s * len(batch))
        return [FrameResult(b.expand(-1, 3, -1, -1) if b.shape[1] == 1 else b) for b in batch]

    def process_large(self, image: Any, hints: Any = None) -> FrameResult:
        return self.process([image])[0]

    def sequence(self, handoff_start: int | None = None, stop: int | None = None) -> _StandInSequence:
        return _StandInSequence(self)


class _StandInSequence:
    """A frame range's sequence (:meth:`FrameSequence.process` takes the frame indices first)."""

    def __init__(self, pipeline: StandInPipeline):
        self.pipeline = pipeline

    def process(self, indices: list[int], frames: Any, hints: Any = None) -> list[FrameResult]:
        return self.pipeline.process(frames)


def _install_stand_in(sleep_s: float) -> None:
    """Make this process's actor code build :class:`StandInPipeline` (this code, or the layout
    before the second redesign step, where the actor imported it in ``jobs.worker``)."""
    import importlib

    StandInPipeline.sleep_s = sleep_s
    for name in ("jobs.units.context", "jobs.worker"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "FramePipeline"):
            module.FramePipeline = StandInPipeline


def stand_in_actor(sleep_s: float) -> type:
    """A :class:`~jobs.actor.PipelineActor` whose frame pipeline is a :class:`StandInPipeline`
    (patched in the actor's own process: its models are never built)."""
    from jobs.actor import PipelineActor

    class StandInActor(PipelineActor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            _install_stand_in(sleep_s)
            super().__init__(*args, **kwargs)

    return StandInActor


# ---- loopback S3 with a delay per request ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proxy(listen: int, upstream: int, latency_s: float) -> None:
    """A TCP proxy that waits ``latency_s`` before forwarding each HTTP request (runs forever, in its own process)."""

    async def pipe(reader, writer, on_data) -> None:
        try:
            while data := await reader.read(1 << 16):
                await on_data()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream)
        state = {"new": True}

        async def request_starts() -> None:
            if state["new"]:  # the first bytes of a request: the round trip a real object store costs
                state["new"] = False
                await asyncio.sleep(latency_s)

        async def response_comes() -> None:
            state["new"] = True

        await asyncio.gather(pipe(client_reader, server_writer, request_starts),
                             pipe(server_reader, client_writer, response_comes))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class LoopbackS3:
    """moto's S3 server in a process of its own, behind :func:`_proxy` (``--latency-ms`` per request)."""

    def __init__(self, latency_ms: float):
        self.moto_port, self.port = _free_port(), _free_port()
        moto = Path(sys.executable).parent / "moto_server"
        self.moto = subprocess.Popen([str(moto), "-p", str(self.moto_port), "-H", "127.0.0.1"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proxy = multiprocessing.get_context("spawn").Process(
            target=_proxy, args=(self.port, self.moto_port, latency_ms / 1000.0), daemon=True)
        self.proxy.start()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self.options = {"key": "testing", "secret": "testing",
                        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{self.port}"}}
        import s3fs

        deadline = time.time() + 60
        while True:
            try:
                s3fs.S3FileSystem(**self.options, skip_instance_cache=True).mkdir(BUCKET)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        self.proxy.terminate()
        self.moto.terminate()


# ---- inputs --------------------------------------------------------------------------------


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_inputs(root: Path, n: int, s3: LoopbackS3 | None = None) -> str:
    """``n`` tiny stills, 1000 to a folder (on the local disk, or in the S3 bucket); returns their prefix."""
    data = _png()
    if s3 is not None:
        import s3fs

        fs = s3fs.S3FileSystem(**s3.options)
        for start in range(0, n, 5000):
            fs.pipe({f"{BUCKET}/in/box{i // 1000:05d}/p{i:07d}.png": data for i in range(start, min(n, start + 5000))})
        return f"s3://{BUCKET}/in/"
    for i in range(n):
        folder = root / "in" / f"box{i // 1000:05d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"p{i:07d}.png").write_bytes(data)
    return str(root / "in") + "/"


# ---- the run -------------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sustained(finished_ms: np.ndarray) -> float:
    """Units per second over the middle 80 % of completions (start-up and the tail left out)."""
    t = np.sort(finished_ms.astype(np.float64)) / 1000.0
    if t.size < 10:
        return float(t.size / max(1e-9, t[-1] - t[0])) if t.size > 1 else 0.0
    lo, hi = int(0.1 * t.size), int(0.9 * t.size)
    return float((hi - lo) / max(1e-9, t[hi] - t[lo]))


def _manifest_text(inputs: str, tmp: Path, s3: LoopbackS3 | None, storage: str, data: str, actors: int,
                   images_per_unit: int) -> str:
    metrics = f"s3://{BUCKET}/metrics" if storage == "s3" else str(tmp / "metrics")
    output = f"s3://{BUCKET}/out" if data == "s3" else str(tmp / "out")
    options = "" if s3 is None else "storage_options: " + json.dumps(s3.options)
    # the metrics take the output's storage options (local paths ignore them)
    output_options = json.dumps(s3.options) if s3 is not None else "{}"
    return textwrap.dedent(f"""
        inputs: [{inputs}]
        {options}
        output: {{prefix: {output}, storage_options: {output_options}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: {actors}, gpus_per_actor: 0, cpus_per_actor: 1, images_per_shard: {images_per_unit},
                     batch_size: {images_per_unit}, retries: 2}}
        metrics: {{prefix: {metrics}}}
    """)


def _quiet_console():
    from rich.console import Console

    return Console(file=open(os.devnull, "w"))  # noqa: SIM115 -- the run's whole life


def bench(units: int, actors: int, nodes: int, storage: str, latency_ms: float, *, data: str = "local",
          images_per_unit: int = 1, sleep_ms: float = 0.0, workdir: str | None = None,
          first_unit_only: bool = False) -> dict[str, Any]:
    """The figures of one simulated archive job (see the module)."""
    import ray
    from ray.cluster_utils import Cluster

    from jobs.driver import RunOptions, run_job
    from jobs.manifest import parse_manifest

    os.environ["RAY_AUTH_MODE"] = "disabled"
    tmp = Path(workdir or tempfile.mkdtemp(prefix="colorstyle-scale-"))
    s3 = LoopbackS3(latency_ms) if "s3" in (storage, data) else None
    cluster = None
    figures: dict[str, Any] = {
        "units": units, "actors": actors, "nodes": nodes, "storage": storage, "data": data,
        "latency_ms": latency_ms, "images_per_unit": images_per_unit, "sleep_ms": sleep_ms}
    try:
        made = time.perf_counter()
        inputs = make_inputs(tmp, units * images_per_unit, s3 if data == "s3" else None)
        figures["inputs_made_s"] = time.perf_counter() - made
        text = _manifest_text(inputs, tmp, s3, storage, data, actors, images_per_unit)
        manifest = parse_manifest(text, "scale.yaml")
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(nodes):
            cluster.add_node(num_cpus=-(-actors // nodes))
        cluster.wait_for_nodes()
        if first_unit_only:
            figures.update(_first_unit(cluster.address, text, sleep_ms, manifest.metrics_prefix,
                                       s3.options if storage == "s3" else None))
            return figures
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        run_options = RunOptions(progress=False, actor_class=stand_in_actor(sleep_ms / 1000.0), log_interval_s=0)
        quiet = _quiet_console()
        _clear_peak()
        cpu, start, started_at = time.process_time(), time.perf_counter(), time.time()
        report = run_job(manifest, run_options, quiet)
        cpu, wall, ended_at = time.process_time() - cpu, time.perf_counter() - start, time.time()
        peak = _peak_rss_mb()
        resume = time.perf_counter()
        again = run_job(manifest, run_options, quiet)
        resume = time.perf_counter() - resume
        metrics_options = s3.options if storage == "s3" else None
        table = pq.read_table(io.BytesIO(_read(report.written["units"], metrics_options)),
                              columns=["started_at", "finished_at"])
        started = table["started_at"].cast("int64").to_numpy()
        finished = table["finished_at"].cast("int64").to_numpy()
        t = getattr(report, "timings", {})  # the layout before this step reports none
        figures.update({
            "exit_code": report.exit_code, "images_done": report.job_summary.get("frames", 0),
            "resume_exit_code": again.exit_code, "plan_s": t.get("plan_s"), "first_unit_s": t.get("first_unit_s"),
            "first_unit_started_s": float(started.min() / 1000.0 - started_at) if started.size else None,
            "pool_ready_s": (report.pool_ready_at - started_at) if report.pool_ready_at else None,
            "units_per_s": _sustained(finished),
            "run_wall_s": wall, "driver_ms_per_unit": 1000.0 * cpu / max(1, units),
            "driver_ms_per_unit_dispatching": (1000.0 * t["dispatch_cpu_s"] / max(1, units)
                                               if t.get("dispatch_cpu_s") is not None else None),
            "driver_peak_rss_mb": peak, "resume_s": resume, "consolidate_s": t.get("consolidate_s"),
            "after_last_unit_s": float(ended_at - finished.max() / 1000.0) if finished.size else None,
            "part_files": t.get("part_files"), "metrics_flushes": t.get("metrics_flushes"),
        })
        return figures
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        if s3 is not None:
            s3.close()


# ---- first unit of a huge listing: the driver in a process of its own, stopped once it is running ----------


def _vm_hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _first_started(metrics_prefix: str, options: dict | None) -> float | None:
    """The earliest ``started_at`` (epoch seconds) in the units parts written so far."""
    from colorstyle_core import storage

    fs, root = storage.filesystem(metrics_prefix.rstrip("/"), options)
    try:
        paths = [p for p in fs.find(root) if "/parts/units/" in p and p.endswith(".parquet")]
    except FileNotFoundError:
        return None
    if not paths:
        return None
    blobs = fs.cat(paths)
    starts = [pq.read_table(io.BytesIO(b), columns=["started_at"])["started_at"].cast("int64").to_numpy().min()
              for b in blobs.values()]
    return float(min(starts)) / 1000.0


def _first_unit(address: str, text: str, sleep_ms: float, metrics_prefix: str, options: dict | None,
                after_first_s: float = 30.0, limit_s: float = 900.0) -> dict[str, Any]:
    """Run the driver in a child process until units have run for ``after_first_s`` seconds (the listing, which
    stays at most 4096 units ahead of the actors, goes on meanwhile), then kill it (as a driver dies): the times
    to the first unit planned and the first unit started on an actor, and the driver's peak RSS."""
    import threading

    env = {**os.environ, "RAY_ADDRESS": address}
    config = json.dumps({"manifest": text, "sleep_ms": sleep_ms})
    child = subprocess.Popen([sys.executable, "-m", "jobs.bench.scale", "--child", config], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started_at = json.loads(child.stdout.readline())["started_at"]  # the child's clock at run_job
    listed: list[float] = []
    planned: list[float] = []  # the first unit is planned: the driver starts the pool

    def watch() -> None:
        for line in child.stderr:
            text = line.lstrip()
            if text.startswith("listed "):
                listed.append(time.time())
            elif "listing inputs and starting the pool" in text:
                planned.append(time.time())

    threading.Thread(target=watch, daemon=True).start()
    first, seen, peak, deadline = None, 0.0, 0.0, time.time() + limit_s
    try:
        while time.time() < deadline and child.poll() is None:
            peak = max(peak, _vm_hwm_mb(child.pid))
            if first is None:
                first, seen = _first_started(metrics_prefix, options), time.time()
            elif time.time() > seen + after_first_s:
                break
            time.sleep(0.5)
        peak = max(peak, _vm_hwm_mb(child.pid))
    finally:
        child.kill()
        child.wait()
    return {"listing_s": (listed[0] - started_at) if listed else None,
            "first_unit_planned_s": (planned[0] - started_at) if planned else None,
            "first_unit_started_s": (first - started_at) if first is not None else None,
            "driver_peak_rss_mb": peak, "stopped_after_s": time.time() - started_at}


def _child(config: str) -> int:
    """The driver of :func:`_first_unit` (``--child``): connects to ``RAY_ADDRESS`` and runs the manifest."""
    import ray

    from jobs.driver import RunOptions, run_job
    from jobs.manifest import parse_manifest

    settings = json.loads(config)
    manifest = parse_manifest(settings["manifest"], "scale.yaml")
    ray.init(logging_level="ERROR", log_to_driver=False)
    from rich.console import Console

    print(json.dumps({"started_at": time.time()}), flush=True)
    run_job(manifest, RunOptions(progress=False, actor_class=stand_in_actor(settings["sleep_ms"] / 1000.0),
                                 log_interval_s=0), Console(stderr=True, width=200))
    return 0


def _read(uri: str, options: dict | None) -> bytes:
    from colorstyle_core import storage

    return storage.read_bytes(uri, options)


def _clear_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--units", type=int, default=1000, help="work units (default 1000)")
    p.add_argument("--actors", type=int, default=64, help="stand-in actors (default 64)")
    p.add_argument("--nodes", type=int, default=4, help="simulated nodes they are spread over (default 4)")
    p.add_argument("--storage", choices=("local", "s3"), default="s3", help="where the metrics live (default s3)")
    p.add_argument("--data", choices=("local", "s3"), default="local",
                   help="where the stills and outputs live (default local; see the module)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="delay per S3 request (default 20)")
    p.add_argument("--images-per-unit", type=int, default=1, help="stills per unit (default 1)")
    p.add_argument("--sleep-ms", type=float, default=0.0, help="the stand-in pipeline's time per frame (default 0)")
    p.add_argument("--workdir", help="where the inputs and outputs go (default: a new temporary folder)")
    p.add_argument("--first-unit-only", action="store_true",
                   help="run the driver in a process of its own until units have run for 30 s, then kill it: "
                        "first_unit_planned_s, first_unit_started_s, driver_peak_rss_mb "
                        "(listing_s if the listing ended by then; for millions of inputs)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as one JSON object")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args.child)
    figures = bench(args.units, args.actors, args.nodes, args.storage, args.latency_ms, data=args.data,
                    images_per_unit=args.images_per_unit, sleep_ms=args.sleep_ms, workdir=args.workdir,
                    first_unit_only=args.first_unit_only)
    for key, value in figures.items():
        print(f"{key:22s} {value:.3f}" if isinstance(value, float) else f"{key:22s} {value}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

