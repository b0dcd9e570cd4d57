"""``colorstyle bench``: throughput of the job against the model alone and against a naive loop.

Three measurements on the same frames, models, weights and thread count:

1. the job: ``run_job`` on the manifest (fresh output, embedded or given Ray);
2. the bare model loop: frames decoded into memory first, then batches through the
   job's own frame pipeline (:class:`colorstyle_core.pipeline.FramePipeline`), no I/O
   (the ceiling the job could reach);
3. the naive loop, as seed projects did it: for every frame, build the models,
   decode the frame, process it, write a PNG to disk.

Pipeline efficiency = job frames/s / bare frames/s. Figures are printed, never asserted.

``--methods`` instead compares the three stylization methods on the same frames, at the
same processing size, on the same device and threads, each through the frame pipeline:
Gatys (``--gatys-steps``, 300 by default, the job's default), the fast network
(``--fast-model``, else generated weights of the same architecture: the same cost) and the
arbitrary-style networks; it prints frames/s, seconds per frame and the speed ratios
fast / Gatys and arbitrary / Gatys.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import get_args

import torch

from colorstyle_core import imageio
from colorstyle_core.catalog import generated_state_dict
from colorstyle_core.color import to_uint8
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.imageio import frame_tensor, frames_rgb8
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import ModelWeights
from colorstyle_core.style.methods import METHODS
from colorstyle_core.synthetic import saved
from colorstyle_core.video import read_frames
from jobs.bench import SHARED_DATA
from jobs.listing import list_files
from jobs.manifest import Manifest, OutputSpec, load_manifest
from jobs.plan import probe_video


def _checkpoint_files(manifest: Manifest, cw: ModelWeights | None, sw: ModelWeights | None, tmp: str
                      ) -> dict[str, tuple[str, str]]:
    """The weights as checkpoint files ``{step: (path, sha256)}`` (generated ones too), so the naive
    loop pays what a naive script pays per frame: read, verify and load a checkpoint. A method whose
    weights are not a torch checkpoint (``arbitrary``'s ONNX files) uses its files as they are."""
    config = manifest.pipeline.frame_pipeline()
    out = {}
    for step, payload, name in (
            ("colorize", cw, config.colorize.model if config.colorize else None),
            ("stylize", sw, METHODS.get(config.stylize.method).checkpoint_name(config.stylize)
             if config.stylize else None)):
        if name is None:
            continue
        data, digest = saved(payload.state_dict() if payload else generated_state_dict(name, 0))
        path = str(Path(tmp, f"{name}.pth"))
        Path(path).write_bytes(data)
        out[step] = (path, digest)
    return out


def _pipeline_from_files(manifest: Manifest, checkpoints: dict[str, tuple[str, str]], styles, device: str,
                         sw: ModelWeights | None = None) -> FramePipeline:
    """The frame pipeline with its models read, verified and built from checkpoint files (as the driver and an
    actor do it: each step's weights through the one loader, then the models built from them)."""
    from colorstyle_core.loader import WeightsSource

    config = manifest.pipeline.frame_pipeline()
    colorizer = stylizer = None
    if (c := config.colorize) is not None:
        colorizer = Colorizer.from_weights(c.model, WeightsSource(*checkpoints["colorize"]), device=device,
                                           gamut=c.gamut)
    if (st := config.stylize) is not None:
        method = METHODS.get(st.method)
        weights = method.weights(st, WeightsSource(*checkpoints["stylize"]), False) if "stylize" in checkpoints \
            else sw
        stylizer = method.build(st, weights, device=device)
    return FramePipeline(config, colorizer, stylizer, styles)


def _frames(manifest: Manifest, limit: int | None) -> list[torch.Tensor]:
    files, _, _ = list_files(manifest.inputs, manifest.storage_options, manifest.output.prefix,
                             manifest.output_storage_options)
    frames: list[torch.Tensor] = []
    for f in files:
        if f.kind == "video":
            info = probe_video(f.uri, manifest.storage_options)
            stop = info.frame_count if limit is None else min(info.frame_count, limit - len(frames))
            frames += [frame_tensor(rgb) for _, rgb in read_frames(f.uri, info, 0, stop, f.uri)]
        if limit is not None and len(frames) >= limit:
            break
    return frames


PREPARED_CLIPS = {"dev_kenburns_gray_1080p.mp4": ("video/dev_kenburns_gray.mp4", (1920, 1080))}
"""Inputs a benchmark manifest may name that the benchmark makes itself when missing (not committed):
file name -> (shared data file it is scaled from, (width, height))."""


def prepare_inputs(manifest: Manifest) -> list[str]:
    """Make the missing :data:`PREPARED_CLIPS` a manifest names (bicubic upscale, x264 CRF 12); returns them."""
    import av
    import numpy as np
    from PIL import Image

    made = []
    for spec in manifest.inputs:
        uri = spec.uri or ""
        name = Path(uri).name
        if name not in PREPARED_CLIPS or Path(uri).exists():
            continue
        source, (width, height) = PREPARED_CLIPS[name]
        shared = SHARED_DATA / source
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        partial = Path(uri).with_suffix(".partial.mp4")
        with av.open(str(shared)) as src, av.open(str(partial), "w") as dst:
            stream_in = src.streams.video[0]
            out = dst.add_stream("libx264", rate=stream_in.average_rate, options={"crf": "12", "preset": "fast"})
            out.width, out.height, out.pix_fmt = width, height, "yuv420p"
            for frame in src.decode(stream_in):
                big = Image.fromarray(frame.to_ndarray(format="rgb24")).resize((width, height), Image.BICUBIC)
                for packet in out.encode(av.VideoFrame.from_ndarray(np.asarray(big), format="rgb24")):
                    dst.mux(packet)
            for packet in out.encode(None):
                dst.mux(packet)
        partial.replace(uri)
        made.append(uri)
    return made


def actor_path(manifest: Manifest, cw: ModelWeights | None, sw: ModelWeights | None, tmp: str, device: str
               ) -> dict[str, float]:
    """The actor's own code (:class:`jobs.worker.UnitProcessor` on every frame range) in this process, no Ray.

    Returns wall seconds and CPU core-seconds (this process, all its threads: decode, colour work,
    encode, write) per frame, and the same two for the network alone on the same frames (batches of
    the network's input, ``batch_size`` at a time), so the CPU spent outside the network per frame is
    their difference: the figure that sets a GPU node's frame rate. That difference of two figures of
    about a core-second each moves by +-0.1 from run to run on a shared 2-core machine, so it is also
    measured directly (``direct_outside_network_cpu_s_per_frame``): the actor path once more with the
    colorizer's network answered from the outputs it gave in the first pass (everything else runs).
    """
    import socket

    from jobs.driver import worker_spec
    from jobs.plan import plan_job
    from jobs.units.base import ActorInfo
    from jobs.worker import UnitProcessor

    fresh = manifest.model_copy(update={"output": manifest.output.model_copy(update={"prefix": f"{tmp}/actor"}),
                                       "job_id": None})
    plan = plan_job(fresh)
    spec = dataclasses.replace(worker_spec(fresh, plan.job_id, "bench"), device=device)
    processor = UnitProcessor(spec, cw, sw, ActorInfo("bench", "local", socket.gethostname(), (), device, os.getpid(),
                                                      ""))
    frames = sum(u.frames for u in plan.ranges)
    bs = manifest.execution.batch_size
    warm_up = torch.cat(_frames(manifest, bs))  # as decoded frames, the path the actor takes (and compile_colour's)
    processor.pipeline.process(frames_rgb8(list(to_uint8(warm_up).permute(0, 2, 3, 1).numpy())))
    colorizer = processor.pipeline.colorizer
    recorded: list[torch.Tensor] = []
    if colorizer is not None:  # the network's outputs, for the direct measurement below
        network = colorizer._network
        colorizer._network = lambda *a: recorded.append(network(*a)) or recorded[-1]  # type: ignore[method-assign]
    cpu, wall = time.process_time(), time.perf_counter()
    for unit in plan.ranges:
        processor.process(unit, 0, time.time())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    figures = {"actor_frames": frames, "actor_wall_s_per_frame": wall / max(1, frames),
               "actor_cpu_s_per_frame": cpu / max(1, frames)}
    if colorizer is not None:
        replay = iter(recorded)
        colorizer._network = lambda *a: next(replay)  # type: ignore[method-assign]
        cpu = time.process_time()
        for unit in plan.ranges:
            processor.process(unit, 0, time.time())
        figures["direct_outside_network_cpu_s_per_frame"] = (time.process_time() - cpu) / max(1, frames)
        del colorizer._network  # the method again
    if colorizer is not None and frames:
        net = colorizer.net
        net_in = colorizer.network_input(torch.rand(bs, 1, 64, 64))
        with torch.inference_mode():
            net(net_in)  # warm-up
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(0, frames, bs):
                net(net_in)
            if colorizer.device.type == "cuda":
                torch.cuda.synchronize()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = bs * len(range(0, frames, bs))
        figures |= {"network_wall_s_per_frame": wall / n, "network_cpu_s_per_frame": cpu / n,
                    "network_frames_per_s": n / wall}
        figures["outside_network_cpu_s_per_frame"] = figures["actor_cpu_s_per_frame"] - cpu / n
    return figures


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
                                           untrained_seed=0 if manifest.pipeline.untrained_weights else None,
                                           compile_colour=manifest.execution.compile_colour)
            bs = manifest.execution.batch_size
            pipeline.process(torch.cat(frames[:bs]))  # warm-up (and compile_colour's one-off compile)
            sequence = pipeline.sequence()
            start = time.perf_counter()
            for i in range(0, len(frames), bs):
                sequence.process(list(range(i, min(i + bs, len(frames)))), torch.cat(frames[i : i + bs]))
            bare_fps = len(frames) / (time.perf_counter() - start)

            checkpoints = _checkpoint_files(manifest, cw, sw, tmp)
            n_naive = min(naive_frames, len(frames))
            start = time.perf_counter()
            for k, frame in enumerate(_frames(manifest, n_naive)):  # decodes again, as a naive loop does
                naive = _pipeline_from_files(manifest, checkpoints, styles, device, sw)  # rebuilt per frame
                out = naive.process([frame])[0].image
                Path(tmp, f"naive_{k:05d}.png").write_bytes(
                    imageio.encode_image(imageio.to_uint8_hwc(out), "x.png"))
            naive_fps = n_naive / (time.perf_counter() - start)
            actor = actor_path(manifest, cw, sw, tmp, device)
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
        **actor,
        **{f"{s}_p50_s": v["p50"] for s, v in stages.items()},
        **{f"{s}_p95_s": v["p95"] for s, v in stages.items()},
    }


def bench_methods(manifest: Manifest, *, style: str, size: int, frames: int, gatys_frames: int, gatys_steps: int,
                  fast_model: str | None, device: str = "cpu", untrained: bool = False) -> dict[str, dict[str, float]]:
    """Seconds per frame of each stylization method on the same frames (see the module docstring).

    Returns:
        ``{method: {"frames": n, "seconds_per_frame": s, "frames_per_s": f}}``.
    """
    from colorstyle_core.loader import WeightsSource
    from colorstyle_core.pipeline_types import PipelineConfig, StylizeStep
    from colorstyle_core.style.gatys import StyleConfig

    threads = max(1, int(manifest.execution.cpus_per_actor))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        clip = _frames(manifest, frames)
        style_image = imageio.to_tensor(imageio.decode_image(Path(style).read_bytes(), style).pixels)
        out: dict[str, dict[str, float]] = {}
        for method in METHODS:
            step = StylizeStep((style,) if method.takes_styles else (), StyleConfig(steps=gatys_steps), size=size,
                               method=method.name)
            # a method that needs a trained model (fast): --fast-model, else generated weights (the same cost)
            generated = fast_model is None if method.needs_model else untrained
            source = WeightsSource(fast_model if method.needs_model else None)
            weights = method.weights(step, source, generated)  # None where generated weights stand in
            stylizer = method.build(step, weights, untrained_seed=0 if weights is None else None, device=device,
                                    threads=threads)
            pipeline = FramePipeline(PipelineConfig(stylize=step), stylizer=stylizer,
                                     styles=[style_image] if method.takes_styles else [])
            batch = clip if method.feed_forward else clip[:gatys_frames]
            pipeline.process(batch[:1] if method.feed_forward else [])  # warm-up (feed-forward: first call allocates)
            start = time.perf_counter()
            for frame in batch:
                pipeline.process([frame])
            seconds = (time.perf_counter() - start) / len(batch)
            out[method.name] = {"frames": len(batch), "seconds_per_frame": seconds, "frames_per_s": 1.0 / seconds}
        return out
    finally:
        torch.set_num_threads(previous_threads)


def add_bench_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark a manifest: job vs bare model loop vs naive loop",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("manifest", nargs="?", default="manifests/bench.yaml")
    p.add_argument("--naive-frames", type=int, default=8, help="frames for the naive loop (default 8)")
    p.add_argument("--untrained-weights", action="store_true", help="time with generated weights (same cost)")
    p.add_argument("--address", help="Ray address (default: embedded)")
    p.add_argument("--device", default="cpu", help="device of the bare and naive loops (default cpu)")
    p.add_argument("--no-overlap", action="store_true", help="execution.overlap_io false: decode, network and "
                   "encode one after the other in each actor (the figures before the overlap)")
    p.add_argument("--overlap", action="store_true", help="execution.overlap_io true: the decode/encode threads "
                   "also on CPU actors (default auto: GPU actors only)")
    p.add_argument("--compile-colour", action="store_true", help="execution.compile_colour true: the per-pixel "
                   "colour maths compiled (torch.compile; the one-off compile is timed in the job's figures)")
    p.add_argument("--video-preset", choices=get_args(OutputSpec.model_fields["video_preset"].annotation),
                   help="output.video_preset for this run")
    p.add_argument("--actor-path", action="store_true", help="only the actor's own code without Ray (decode, "
                   "pipeline, encode, write) and the network alone: CPU core-s per frame outside the network, "
                   "about a minute for a quick before/after")
    m = p.add_argument_group("--methods: Gatys vs fast vs arbitrary stylization on the same frames")
    m.add_argument("--methods", action="store_true", help="compare the three stylization methods instead")
    m.add_argument("--style", help="style image (default: the manifest's first style, else a shared painting)")
    m.add_argument("--size", type=int, default=512, help="processing size, longer side in px (default 512)")
    m.add_argument("--frames", type=int, default=8, help="frames for the feed-forward methods (default 8)")
    m.add_argument("--gatys-frames", type=int, default=1, help="frames for Gatys (default 1)")
    m.add_argument("--gatys-steps", type=int, default=300, help="Gatys L-BFGS steps per frame (default 300)")
    m.add_argument("--fast-model", metavar="URI", help="a trained fast-stylizer checkpoint (default: generated "
                   "weights of the same network: the same cost)")
    p.set_defaults(func=cmd_bench)


def cmd_bench_methods(args: argparse.Namespace, manifest: Manifest) -> int:
    st = manifest.pipeline.stylize
    default_style = str(SHARED_DATA / "style" / "color" / "great_wave_hokusai.jpg")
    style = args.style or (st.styles[0] if st and st.styles else default_style)
    figures = bench_methods(manifest, style=style, size=args.size, frames=args.frames, gatys_frames=args.gatys_frames,
                            gatys_steps=args.gatys_steps, fast_model=args.fast_model, device=args.device,
                            untrained=args.untrained_weights)
    threads = max(1, int(manifest.execution.cpus_per_actor))
    print(f"\nstylization methods on frames of {args.manifest} at {args.size} px, {threads} thread(s), "
          f"device {args.device}, torch {torch.__version__}")
    for method, f in figures.items():
        extra = "" if METHODS.get(method).feed_forward else f" ({args.gatys_steps} L-BFGS steps)"
        print(f"  {method:9s} {f['frames_per_s']:10.4f} frames/s  {f['seconds_per_frame']:10.3f} s/frame "
              f"over {int(f['frames'])} frame(s){extra}")
    for slow in (m for m in METHODS if not m.feed_forward):
        for fast in (m for m in METHODS if m.feed_forward):
            ratio = figures[slow.name]["seconds_per_frame"] / figures[fast.name]["seconds_per_frame"]
            print(f"  {fast.name} / {slow.name} speed ratio: {ratio:.0f}x")
    return 0


def _print_actor_path(figures: dict[str, float]) -> None:
    print(f"  actor path, no Ray  {1 / figures['actor_wall_s_per_frame']:8.3f} frames/s, "
          f"{figures['actor_cpu_s_per_frame']:.3f} CPU core-s per frame")
    if "outside_network_cpu_s_per_frame" in figures:
        print(f"  CPU outside network {figures['outside_network_cpu_s_per_frame']:8.3f} core-s per frame "
              f"(decode, colour work, encode, write; network alone {figures['network_cpu_s_per_frame']:.3f})")
    if "direct_outside_network_cpu_s_per_frame" in figures:
        print(f"  CPU outside network {figures['direct_outside_network_cpu_s_per_frame']:8.3f} core-s per frame "
              f"measured directly (the actor path again, the network's outputs replayed)")


def cmd_bench_actor_path(args: argparse.Namespace, manifest: Manifest) -> int:
    from jobs.driver import load_weights

    cw, sw = load_weights(manifest)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(manifest.execution.cpus_per_actor)))
    try:
        with tempfile.TemporaryDirectory(prefix="colorstyle-bench-") as tmp:
            figures = actor_path(manifest, cw, sw, tmp, args.device)
    finally:
        torch.set_num_threads(previous_threads)
    ex = manifest.execution
    print(f"\nactor path of {args.manifest}: {int(figures['actor_frames'])} frames, {ex.cpus_per_actor} thread(s), "
          f"batch {ex.batch_size}, overlap_io {ex.overlap_io}, compile_colour {ex.compile_colour}, "
          f"video_preset {manifest.output.video_preset}, device {args.device}")
    _print_actor_path(figures)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    if args.untrained_weights:
        manifest = manifest.model_copy(
            update={"pipeline": manifest.pipeline.model_copy(update={"untrained_weights": True})})
    if args.compile_colour:
        manifest = manifest.model_copy(
            update={"execution": manifest.execution.model_copy(update={"compile_colour": True})})
    if args.no_overlap or args.overlap:
        manifest = manifest.model_copy(
            update={"execution": manifest.execution.model_copy(update={"overlap_io": bool(args.overlap)})})
    if args.video_preset:
        manifest = manifest.model_copy(
            update={"output": manifest.output.model_copy(update={"video_preset": args.video_preset})})
    for made in prepare_inputs(manifest):
        print(f"made benchmark input {made}")
    if args.methods:
        return cmd_bench_methods(args, manifest)
    if args.actor_path:
        return cmd_bench_actor_path(args, manifest)
    figures = bench(manifest, naive_frames=args.naive_frames, address=args.address, device=args.device)
    ex = manifest.execution
    print(f"\nbenchmark {args.manifest}: {figures['frames']} frames, {ex.actors} actor(s) x {ex.cpus_per_actor} cpu, "
          f"batch {ex.batch_size}, overlap_io {ex.overlap_io}, compile_colour {ex.compile_colour}, "
          f"torch {torch.__version__}, device {args.device}")
    print(f"  job (processing)    {figures['job_frames_per_s']:8.3f} frames/s")
    print(f"  job (end to end)    {figures['job_end_to_end_frames_per_s']:8.3f} frames/s "
          f"(incl. {figures['job_startup_s']:.1f} s to start Ray and load models)")
    print(f"  bare model loop     {figures['bare_frames_per_s']:8.3f} frames/s (frames in memory, same threads)")
    print(f"  pipeline efficiency {figures['pipeline_efficiency']:8.3f}  (job / bare)")
    print(f"  naive loop          {figures['naive_frames_per_s']:8.3f} frames/s (models rebuilt and a PNG "
          f"written per frame)")
    if "network_frames_per_s" in figures:
        print(f"  network alone       {figures['network_frames_per_s']:8.3f} frames/s (colorizer forward at its "
              f"input size, batch {ex.batch_size})")
    _print_actor_path(figures)
    print(f"  speed-up over naive {figures['speedup_over_naive']:8.2f}x (processing), "
          f"{figures['speedup_over_naive_end_to_end']:.2f}x (end to end)")
    print("  per-stage seconds per frame (p50 / p95):")
    for key in sorted(k for k in figures if k.endswith("_p50_s")):
        stage = key.removesuffix("_p50_s")
        print(f"    {stage:11s} {figures[key]:.4f} / {figures[stage + '_p95_s']:.4f}")
    return 0
