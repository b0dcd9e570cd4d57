"""Benchmark: training throughput (samples/s) per worker count, with Ray Train.

Runs the same training (``--model``, crops of ``--size`` px, ``--batch`` samples per step
over all workers, ``--steps`` steps) once per worker count in ``--workers``, each worker
with ``--cpus`` CPU cores (its torch threads), on the colour photos in ``--data``, from
generated starting weights (the same cost as real ones), and prints per run:
samples/s over all workers and per worker (median over the steps after the first
``--warmup``), seconds per step, and the wall time of the whole run (Ray Train start-up,
data loading, checkpoints, validation included). Asserts nothing.

``python -m jobs.bench.train [--workers 1 2] [--model eccv16] [--size 256] [--batch 8] [--steps 20]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from rich.console import Console

from jobs.bench import SHARED_DATA
from jobs.train.driver import TrainOptions, run_training
from jobs.train.manifest import TrainManifest

SHARED = SHARED_DATA


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--cpus", type=float, default=1.0, help="CPU cores per worker")
    p.add_argument("--model", default="eccv16", choices=["eccv16", "siggraph17"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="samples per step over all workers")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of the medians")
    p.add_argument("--data", default=str(SHARED / "color"))
    args = p.parse_args(argv)
    console = Console(stderr=True, quiet=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="colorstyle-bench-train-") as tmp:
        for workers in args.workers:
            out = Path(tmp, f"w{workers}")
            manifest = TrainManifest.model_validate(yaml.safe_load(f"""
                train: {{kind: colorizer, model: {args.model}, untrained_init: true, data: ["{args.data}/"],
                         output: "{out}", steps: {args.steps}, batch_size: {args.batch}, size: {args.size},
                         validation: 0.1, checkpoint_every: {args.steps}}}
                execution: {{workers: {workers}, cpus_per_worker: {args.cpus}}}
            """))
            start = time.perf_counter()
            report = run_training(manifest, TrainOptions(), console)
            wall = time.perf_counter() - start
            if report.exit_code != 0:
                print(f"{workers} worker(s): failed: {report.error}")
                continue
            metrics = pq.read_table(out / "train_metrics.parquet").to_pylist()[args.warmup:]
            total = statistics.median(r["samples_per_s"] for r in metrics)
            per = [statistics.median(r["samples_per_s_by_worker"][w] for r in metrics) for w in range(workers)]
            step_s = statistics.median(b["wall_s"] - a["wall_s"] for a, b in zip(metrics, metrics[1:]))
            rows.append((workers, total, per, step_s, wall))
    print(f"{args.model}, crops {args.size}x{args.size}, batch {args.batch} per step over all workers, "
          f"{args.cpus:g} CPU core(s) per worker, {args.steps} steps (medians after {args.warmup})")
    for workers, total, per, step_s, wall in rows:
        print(f"  {workers} worker(s): {total:6.2f} samples/s ({', '.join(f'{v:.2f}' for v in per)} per worker), "
              f"{step_s:.2f} s/step, run wall {wall:.1f} s")
    if len(rows) >= 2:
        print(f"  speed-up {rows[-1][0]} vs {rows[0][0]} worker(s): {rows[-1][1] / rows[0][1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
