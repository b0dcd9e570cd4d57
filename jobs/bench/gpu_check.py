"""One command for a GPU node: ``python -m jobs.bench.gpu_check``.

Runs, on the first CUDA device, and prints one table:

1. the CUDA-only tests (``pytest -m gpu``: mixed-precision parity, an actor on the GPU);
2. the colorize benchmark at 360p and 1080p (``manifests/bench.yaml``, ``manifests/bench-1080p.yaml``)
   with the job's actor on the GPU: job, bare loop and network-alone frames/s, pipeline
   efficiency, CPU core-seconds per frame outside the network; 360p in fp32 and bf16, 1080p in
   fp32 without and with ``execution.compile_colour`` (and whether NVENC opens: ``output.video_encoder: auto`` uses it);
3. the colorizers side by side (ECCV16, SIGGRAPH17, DDColor-T, DDColor-L, Deep Exemplar): seconds per photo;
4. Gatys at 512 px: a batch of 4 frames, 50 L-BFGS steps, seconds per step (fp32, bf16);
5. the fast and arbitrary stylizers at 512 px (frames/s).

Generated weights (the same cost as real ones) where the real ones are not cached, so it runs
from a fresh checkout. Budget: under 8 minutes on one GPU. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence

import torch

from jobs.bench import REPO, SHARED_DATA


def _row(rows: list[tuple[str, str]], what: str, value: str) -> None:
    rows.append((what, value))
    print(f"  {what:58s} {value}", flush=True)


def _gatys(rows: list[tuple[str, str]], precision: str) -> None:
    from colorstyle_core.style.gatys import StyleConfig, Stylizer

    stylizer = Stylizer.from_weights("vgg19", device="cuda", untrained_seed=0)
    stylizer.extractor.precision = precision  # type: ignore[assignment]
    content = torch.rand(4, 3, 288, 512, device="cuda")
    style = torch.rand(1, 3, 512, 512, device="cuda")
    config = StyleConfig(steps=50)
    stylizer(content, [style], StyleConfig(steps=2))  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    stylizer(content, [style], config)
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / 50
    _row(rows, f"Gatys 512x288, batch 4, 50 steps ({precision})", f"{per_step * 1000:.1f} ms/step "
         f"({per_step * 300 / 4:.2f} s per frame at 300 steps)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.bench.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-tests", action="store_true")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing was run")
        return 0
    rows: list[tuple[str, str]] = []
    print(f"GPU check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    started = time.perf_counter()
    if not args.skip_tests:
        t = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/"], cwd=REPO)
        _row(rows, "pytest -m gpu", "passed" if t.returncode == 0 else f"FAILED (exit {t.returncode})")

    from colorstyle_core.encoders import encoder_works
    from colorstyle_core.style.methods import METHODS
    from jobs.bench.colorizers import MODELS, SHARED, bench_cost
    from jobs.bench.job import bench, bench_methods, prepare_inputs
    from jobs.manifest import load_manifest

    _row(rows, "h264_nvenc opens (output.video_encoder: auto uses it)", str(encoder_works("h264_nvenc")))
    runs = [("bench.yaml", "fp32", False), ("bench.yaml", "bf16", False), ("bench-1080p.yaml", "fp32", False),
            ("bench-1080p.yaml", "fp32", True)]  # the 8-minute budget: bf16 at 360p, compile_colour at 1080p
    for name, precision, compile_colour in runs:
        manifest = load_manifest(str(REPO / "manifests" / name))
        prepare_inputs(manifest)
        m = manifest.model_copy(update={
            "pipeline": manifest.pipeline.model_copy(update={"untrained_weights": True}),
            "execution": manifest.execution.model_copy(update={"precision": precision, "gpus_per_actor": 1,
                                                               "compile_colour": compile_colour})})
        f = bench(m, naive_frames=2, address=None, device="cuda")
        label = f"{name} ({precision}{', compile_colour' if compile_colour else ''})"
        _row(rows, f"{label}: job / bare / network frames/s",
             f"{f['job_frames_per_s']:.1f} / {f['bare_frames_per_s']:.1f} / "
             f"{f.get('network_frames_per_s', float('nan')):.1f}")
        _row(rows, f"{label}: efficiency, CPU core-s/frame outside network",
             f"{f['pipeline_efficiency']:.2f}, {f.get('outside_network_cpu_s_per_frame', float('nan')):.3f}")
    for r in bench_cost(sorted((SHARED / "gray").glob("*.jpg"))[:4], MODELS, "cuda"):
        _row(rows, f"colorizer {r['model']}: s per photo (network alone)",
             f"{r['s_per_image']:.3f} ({r['network_s_per_image']:.3f})")
    for precision in ("fp32", "bf16"):
        _gatys(rows, precision)
    manifest = load_manifest(str(REPO / "manifests" / "bench.yaml"))
    style = str(SHARED_DATA / "style" / "color" / "great_wave_hokusai.jpg")
    figures = bench_methods(manifest, style=style, size=512, frames=16, gatys_frames=1, gatys_steps=50,
                            fast_model=None, device="cuda", untrained=True)
    for method in (m.name for m in METHODS if m.feed_forward):
        _row(rows, f"{method} stylizer at 512 px", f"{figures[method]['frames_per_s']:.1f} frames/s")
    print("\n| check | result |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows))
    print(f"\ngpu_check: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
