"""``colorstyle bench``: throughput of the job against the model alone and against a naive loop.

Three measurements on the same frames, models, weights and thread count:

1. the job: ``run_job`` on the manifest (fresh output, embedded or given Ray);
2. the bare model loop: frames decoded into memory first, then batches through the
   job's own frame pipeline (:class:`colorstyle_core.pipeline.FramePipeline`), no I/O
   (the ceiling the job could reach);
3. the naive loop, as seed projects did it: for every frame, build the models,
   decode the frame, process it, write a PNG to disk.

Pipeline efficiency = job frames/s / bare frames/s. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from colorstyle_core import imageio
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.pipeline import FramePipeline, ModelWeights
from colorstyle_core.style.gatys import Stylizer
from colorstyle_core.video import read_frames
from jobs.manifest import Manifest, load_manifest
from jobs.plan import list_inputs, probe_video


def _checkpoint_files(manifest: Manifest, cw: ModelWeights | None, sw: ModelWeights | None, tmp: str
                      ) -> dict[str, tuple[str, str]]:
    """The weights as checkpoint files ``{step: (path, sha256)}`` (generated ones too), so the naive
    loop pays what a naive script pays per frame: read, verify and load a checkpoint."""
    import hashlib
    import io

    from colorstyle_core.synthetic import generated_state_dict

    out = {}
    pipe = manifest.pipeline
    for step, name, payload in (("colorize", pipe.colorize.model if pipe.colorize else None, cw),
                                ("stylize", pipe.stylize.arch if pipe.stylize else None, sw)):
        if name is None:
            continue
        state = payload.state_dict() if payload else generated_state_dict(name, 0)
        if step == "stylize":
            state = {k: v for k, v in state.items() if k.startswith("features.")}
        buf = io.BytesIO()
        torch.save(state, buf)
        path = str(Path(tmp, f"{name}.pth"))
        Path(path).write_bytes(buf.getvalue())
        out[step] = (path, hashlib.sha256(buf.getvalue()).hexdigest())
    return out


def _pipeline_from_files(manifest: Manifest, checkpoints: dict[str, tuple[str, str]], styles, device: str
                         ) -> FramePipeline:
    """The frame pipeline with its models read, verified and built from checkpoint files."""
    from colorstyle_core.loader import WeightsSource

    config = manifest.pipeline.frame_pipeline()
    colorizer = stylizer = None
    if (c := config.colorize) is not None:
        colorizer = Colorizer.from_weights(c.model, WeightsSource(*checkpoints["colorize"]), device=device,
                                           gamut=c.gamut)
    if (st := config.stylize) is not None:
        stylizer = Stylizer.from_weights(st.arch, WeightsSource(*checkpoints["stylize"]), device=device,
                                         pooling=st.pooling)
    return FramePipeline(config, colorizer, stylizer, styles)


def _frames(manifest: Manifest, limit: int | None) -> list[torch.Tensor]:
    files, _, _ = list_inputs(manifest)
    frames: list[torch.Tensor] = []
    for f in files:
        if f.kind == "video":
            info = probe_video(f.uri, manifest.storage_options)
            stop = info.frame_count if limit is None else min(info.frame_count, limit - len(frames))
            frames += [imageio.to_tensor(rgb.astype("float32") / 255.0) for _, rgb in
                       read_frames(f.uri, info, 0, stop, f.uri)]
        if limit is not None and len(frames) >= limit:
            break
    return frames


def bench(manifest: Manifest, *, naive_frames: int, address: str | None, device: str = "cpu") -> dict[str, float]:
    """Run the three measurements; returns the figures (also printed by :func:`main`)."""
    from jobs.driver import RunOptions, load_weights, run_job  # Ray: imported when a benchmark runs
    threads = max(1, int(manifest.execution.cpus_per_actor))
    cw, sw = load_weights(manifest)
    styles = [imageio.to_tensor(imageio.decode_image(Path(s).read_bytes(), s).pixels)
              for s in (manifest.pipeline.stylize.styles if manifest.pipeline.stylize else ())]

    with tempfile.TemporaryDirectory(prefix="colorstyle-bench-") as tmp:
        fresh = manifest.model_copy(update={"output": manifest.output.model_copy(update={"prefix": f"{tmp}/job"}),
                                           "job_id": None})
        report = run_job(fresh, RunOptions(progress=False, address=address))
        job_fps = report.summary.get("frames_per_s", 0.0)
        job_e2e_fps = report.summary.get("end_to_end_frames_per_s", 0.0)
        startup = report.summary.get("startup_s", 0.0)

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            frames = _frames(manifest, None)
            pipeline = FramePipeline.build(manifest.pipeline.frame_pipeline(), styles, colorizer_weights=cw,
                                           stylizer_weights=sw, device=device,
                                           untrained_seed=0 if manifest.pipeline.untrained_weights else None)
            bs = manifest.execution.batch_size
            pipeline.process(frames[:1])  # warm-up
            sequence = pipeline.sequence()
            start = time.perf_counter()
            for i in range(0, len(frames), bs):
                sequence.process(list(range(i, min(i + bs, len(frames)))), torch.cat(frames[i : i + bs]))
            bare_fps = len(frames) / (time.perf_counter() - start)

            checkpoints = _checkpoint_files(manifest, cw, sw, tmp)
            n_naive = min(naive_frames, len(frames))
            start = time.perf_counter()
            for k, frame in enumerate(_frames(manifest, n_naive)):  # decodes again, as a naive loop does
                naive = _pipeline_from_files(manifest, checkpoints, styles, device)  # rebuilt per frame
                out = naive.process([frame])[0].image
                Path(tmp, f"naive_{k:05d}.png").write_bytes(
                    imageio.encode_image(imageio.to_uint8_hwc(out), "x.png"))
            naive_fps = n_naive / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(previous_threads)
    stages = report.summary.get("stages", {})
    return {
        "frames": report.summary.get("frames", 0),
        "job_frames_per_s": job_fps,
        "job_end_to_end_frames_per_s": job_e2e_fps,
        "job_startup_s": startup,
        "bare_frames_per_s": bare_fps,
        "pipeline_efficiency": job_fps / bare_fps if bare_fps else float("nan"),
        "naive_frames_per_s": naive_fps,
        "speedup_over_naive": job_fps / naive_fps if naive_fps else float("nan"),
        "speedup_over_naive_end_to_end": job_e2e_fps / naive_fps if naive_fps else float("nan"),
        **{f"{s}_p50_s": v["p50"] for s, v in stages.items()},
        **{f"{s}_p95_s": v["p95"] for s, v in stages.items()},
    }


def add_bench_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark a manifest: job vs bare model loop vs naive loop",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("manifest", nargs="?", default="manifests/bench.yaml")
    p.add_argument("--naive-frames", type=int, default=8, help="frames for the naive loop (default 8)")
    p.add_argument("--untrained-weights", action="store_true", help="time with generated weights (same cost)")
    p.add_argument("--address", help="Ray address (default: embedded)")
    p.add_argument("--device", default="cpu", help="device of the bare and naive loops (default cpu)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    if args.untrained_weights:
        manifest = manifest.model_copy(
            update={"pipeline": manifest.pipeline.model_copy(update={"untrained_weights": True})})
    figures = bench(manifest, naive_frames=args.naive_frames, address=args.address, device=args.device)
    ex = manifest.execution
    print(f"\nbenchmark {args.manifest}: {figures['frames']} frames, {ex.actors} actor(s) x {ex.cpus_per_actor} cpu, "
          f"batch {ex.batch_size}, torch {torch.__version__}, device {args.device}")
    print(f"  job (processing)    {figures['job_frames_per_s']:8.3f} frames/s")
    print(f"  job (end to end)    {figures['job_end_to_end_frames_per_s']:8.3f} frames/s "
          f"(incl. {figures['job_startup_s']:.1f} s to start Ray and load models)")
    print(f"  bare model loop     {figures['bare_frames_per_s']:8.3f} frames/s (frames in memory, same threads)")
    print(f"  pipeline efficiency {figures['pipeline_efficiency']:8.3f}  (job / bare)")
    print(f"  naive loop          {figures['naive_frames_per_s']:8.3f} frames/s (models rebuilt and a PNG "
          f"written per frame)")
    print(f"  speed-up over naive {figures['speedup_over_naive']:8.2f}x (processing), "
          f"{figures['speedup_over_naive_end_to_end']:.2f}x (end to end)")
    print("  per-stage seconds per frame (p50 / p95):")
    for key in sorted(k for k in figures if k.endswith("_p50_s")):
        stage = key.removesuffix("_p50_s")
        print(f"    {stage:11s} {figures[key]:.4f} / {figures[stage + '_p95_s']:.4f}")
    return 0
