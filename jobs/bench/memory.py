"""Benchmark: peak memory of one large still, through the single-image command and through a job's actor.

Makes a grey (or colour) PNG of ``--size`` pixels from a shared photograph, then

1. ``colorstyle colorize`` on it in a child process (peak RSS from ``getrusage``);
2. a one-actor job on it (the actor's peak RSS during the unit, from ``units.parquet``);
3. the same command on a small photo, for the fixed cost (interpreter, torch, the model).

Prints figures; asserts nothing. Generated weights (same cost as real ones).
``python -m jobs.bench.memory [--size 12000x12000] [--colour] [--stylize]``
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from jobs.bench import SHARED_DATA

SHARED = SHARED_DATA


def _child_peak_mb(argv: list[str]) -> tuple[float, float]:
    """Run ``argv``; its peak RSS (MiB) and wall time (s). Each call runs in a fresh child, so
    ``RUSAGE_CHILDREN`` (the largest child so far) is read by a wrapper child of its own."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024.0, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="12000x12000", help="WIDTHxHEIGHT of the test image")
    p.add_argument("--colour", action="store_true", help="a colour (RGB) image instead of grey")
    p.add_argument("--stylize", action="store_true", help="the job also stylizes (size 256, 2 steps)")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    colorstyle = [sys.executable, "-m", "jobs.cli"]
    with tempfile.TemporaryDirectory(prefix="colorstyle-mem-") as tmp:
        big = Path(tmp, "scan.png")
        mode = "RGB" if args.colour else "L"
        source = SHARED / ("color" if args.colour else "gray") / "coffee.jpg"
        Image.open(source).convert(mode).resize((w, h), Image.Resampling.BILINEAR).save(big)
        small_mb, _ = _child_peak_mb([*colorstyle, "colorize", str(SHARED / "gray" / "coffee.jpg"),
                                      str(Path(tmp, "small.png")), "--untrained-weights", "--device", "cpu"])
        cli_mb, cli_s = _child_peak_mb([*colorstyle, "colorize", str(big), str(Path(tmp, "out.png")),
                                        "--untrained-weights", "--device", "cpu", "--max-pixels", str(w * h)])
        stylize = (f"\n  stylize: {{styles: [{SHARED / 'style' / 'color' / 'great_wave_hokusai.jpg'}], "
                   "size: 256, steps: 2}" if args.stylize else "")
        manifest = Path(tmp, "job.yaml")
        manifest.write_text(f"inputs: [{big}]\noutput: {{prefix: {tmp}/job}}\npipeline:\n  colorize: {{}}{stylize}\n"
                            f"  untrained_weights: true\nexecution: {{actors: 1, cpus_per_actor: 2, "
                            f"max_pixels: {w * h}}}\n")
        start = time.perf_counter()
        subprocess.run([*colorstyle, "run", str(manifest), "--no-progress"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        job_s = time.perf_counter() - start
        units = pq.read_table(next(Path(tmp, "job").rglob("units.parquet"))).to_pylist()
    mp = w * h / 1e6
    actor_mb = units[0]["peak_rss_mb"]
    print(f"\nmemory benchmark: {w}x{h} {'colour' if args.colour else 'grey'} PNG ({mp:.0f} megapixels), "
          f"{'colorize + stylize' if args.stylize else 'colorize'}, generated weights, CPU")
    print(f"  colorstyle colorize, small photo (fixed cost)   {small_mb:8.0f}  MiB")
    print(f"  colorstyle colorize, the large image            {cli_mb:8.0f}  MiB peak, {cli_s:.0f} s "
          f"({(cli_mb - small_mb) * 2**20 / (w * h):.1f} bytes per pixel above the fixed cost)")
    print(f"  one-actor job, the actor during the unit        {actor_mb:8.0f}  MiB peak, job {job_s:.0f} s")
    print(f"  (peak resident memory: resource.getrusage for the command, VmHWM reset per unit for the actor; "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}  MiB in this script)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
