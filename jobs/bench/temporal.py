"""Benchmark: how many optimiser steps a warm start saves, and how much steadier video gets.

On consecutive frames of one shot of the example video:

1. cold: every frame stylized from its content image for ``--steps`` steps
   (per-frame stylization, what the job does without temporal consistency);
2. warm: each frame starts from the previous result warped by optical flow and runs
   the same objective; we count the steps it needs to reach the cold run's final
   loss (the steps a warm start saves);
3. temporal chain: Ruder et al.'s warm start plus temporal loss with a third of the
   steps, as the job runs it; its E_warp against the cold frames'.

Prints figures; asserts nothing. ``python -m jobs.bench.temporal [--size 128] [--steps 60]``.
Uses generated VGG weights unless ``--weights URI`` gives the real checkpoint.

``--film``: the example film (all its frames, its scene cut included) through the job's own frame
pipeline, per frame and with temporal consistency, for colour (ECCV16; generated weights unless
``--colorizer-weights URI``) and for style (the ``arbitrary`` method: Magenta's networks, real
weights installed with colorstyle); for each, the output's E_warp, CDC (TCVC; and without the pairs
across the scene cut) and colourfulness, and the input's (``colorstyle_core.video_metrics``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from colorstyle_core import flow, imageio
from colorstyle_core.color import rgb_to_l
from colorstyle_core.loader import WeightsSource
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.style.gatys import StyleConfig, Stylizer
from colorstyle_core.temporal import StyleChain, TemporalSettings
from colorstyle_core.video import probe, read_frames
from colorstyle_core.video_metrics import measure_consistency
from jobs.bench import SHARED_DATA

SHARED = SHARED_DATA


def _frames(video: Path, count: int, size: int) -> torch.Tensor:
    info = probe(str(video), str(video))
    frames = [imageio.to_tensor(rgb.astype("float32") / 255.0) for _, rgb in read_frames(str(video), info, 0, count,
                                                                                          str(video))]
    x = torch.cat(frames).expand(-1, 3, -1, -1) if frames[0].shape[1] == 1 else torch.cat(frames)
    h, w = x.shape[-2:]
    s = size / max(h, w)
    return torch.nn.functional.interpolate(x, size=(round(h * s), round(w * s)), mode="area")


def _objective(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return losses["content"][:, 0] + losses["style"][:, 0] + losses["tv"][:, 0]


FILM_STEPS = {
    "colour": "colorize: {{model: eccv16{weights}{temporal}}}",
    "style": "stylize: {{method: arbitrary, styles: [{style}], size: 256{temporal}}}",
}


def film(video: Path, style: Path, colorizer_weights: str | None, batch: int = 8) -> list[dict]:
    """E_warp, CDC and colourfulness of the film per frame and with temporal consistency, for colour and style."""
    from jobs.driver import load_weights
    from jobs.manifest import parse_manifest

    info = probe(str(video), str(video))
    inputs = [imageio.to_tensor(rgb.astype("float32") / 255.0)
              for _, rgb in read_frames(str(video), info, 0, info.frame_count, str(video))]
    rows = []
    for step, template in FILM_STEPS.items():
        for temporal in (False, True):
            text = template.format(weights=f", weights: {colorizer_weights}" if colorizer_weights else "",
                                   temporal=", temporal: {enabled: true}" if temporal else "", style=style)
            untrained = step == "colour" and not colorizer_weights
            manifest = parse_manifest(f"inputs: [{video}]\noutput: {{prefix: /tmp/unused}}\npipeline: "
                                      f"{{{text}, untrained_weights: {str(untrained).lower()}}}\n", "bench.yaml")
            cw, sw = load_weights(manifest)
            styles = [imageio.to_tensor(imageio.decode_image(style.read_bytes(), str(style)).pixels)] \
                if step == "style" else []
            pipeline = FramePipeline.build(manifest.pipeline.frame_pipeline(), styles, colorizer_weights=cw,
                                           stylizer_weights=sw, untrained_seed=0 if untrained else None,
                                           device="cpu")
            sequence = pipeline.sequence()
            start = time.perf_counter()
            outputs = []
            for i in range(0, len(inputs), batch):
                chunk = inputs[i : i + batch]
                outputs += [r.image for r in sequence.process(list(range(i, i + len(chunk))), torch.cat(chunk))]
            seconds = (time.perf_counter() - start) / len(inputs)
            m = measure_consistency(outputs, inputs)
            rows.append({"step": step, "temporal": temporal, "untrained": untrained, "s_per_frame": seconds,
                         "e_warp": m.e_warp, "cdc": m.cdc, "cdc_without_cuts": m.cdc_without_cuts,
                         "colourfulness": m.colourfulness, "input_cdc": m.input_cdc,
                         "input_colourfulness": m.input_colourfulness, "frames": m.frames, "cuts": list(m.cuts)})
    return rows


def print_film(rows: list[dict], video: Path) -> None:
    print(f"\n{video.name}, {rows[0]['frames']} frames (scene cuts at {rows[0]['cuts']}); input CDC "
          f"{rows[0]['input_cdc']:.5f}, colourfulness {rows[0]['input_colourfulness']:.2f}")
    print(f"  {'step':7s} {'temporal':9s} {'E_warp':>9s} {'CDC':>8s} {'CDC w/o cuts':>13s} {'colourfulness':>14s} "
          f"{'s/frame':>8s}")
    for r in rows:
        label = r["step"] + (" (UNTRAINED weights)" if r["untrained"] else "")
        print(f"  {r['step']:7s} {'on' if r['temporal'] else 'off':9s} {r['e_warp']:9.5f} {r['cdc']:8.5f} "
              f"{r['cdc_without_cuts']:13.5f} {r['colourfulness']:14.2f} {r['s_per_frame']:8.3f}"
              + ("   " + label if r["untrained"] else ""))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_temporal", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, default=SHARED / "video" / "dev_kenburns_gray.mp4")
    p.add_argument("--style", type=Path, default=SHARED / "style" / "color" / "great_wave_hokusai.jpg")
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--size", type=int, default=128, help="processing size, longer side (px)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--weights", help="VGG19 checkpoint URI (default: generated weights)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--film", action="store_true", help="the whole film, colour and style, per frame and temporal: "
                   "E_warp, CDC, colourfulness")
    p.add_argument("--colorizer-weights", help="ECCV16 checkpoint URI for --film (default: generated weights)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.film:
        print_film(film(args.video, args.style, args.colorizer_weights), args.video)
        return 0
    stylizer = (Stylizer.from_weights("vgg19", WeightsSource(args.weights), device="cpu") if args.weights
                else Stylizer.from_weights("vgg19", untrained_seed=0, device="cpu"))
    frames = _frames(args.video, args.frames, args.size)
    style = imageio.to_tensor(imageio.decode_image(args.style.read_bytes(), str(args.style)).pixels)
    config = StyleConfig(steps=args.steps)
    targets = stylizer.targets([style], config, frames[:1])

    start = time.perf_counter()
    cold = [stylizer(frames[i : i + 1], targets, config) for i in range(len(frames))]
    cold_s = time.perf_counter() - start
    needed = []
    prev = cold[0].images
    warm_config = StyleConfig(**{**config.__dict__, "init": "image"})
    for i in range(1, len(frames)):
        pair = flow.bidirectional_flow(rgb_to_l(frames[i : i + 1]), rgb_to_l(frames[i - 1 : i]), "dis", "medium")
        init = flow.warp(prev, pair.fwd).clamp(0, 1)
        warm = stylizer(frames[i : i + 1], targets, warm_config, init_image=init)
        target = float(_objective(cold[i].losses)[-1])
        curve = _objective(warm.losses)
        reached = [k for k in range(len(curve)) if float(curve[k]) <= target]
        needed.append(reached[0] + 1 if reached else args.steps)
        prev = warm.images

    chain = StyleChain(stylizer, targets, config, TemporalSettings(preset="medium", temporal_weight=1e3))
    start = time.perf_counter()
    chained = [chain.step(frames[i : i + 1])[0] for i in range(len(frames))]
    chain_s = time.perf_counter() - start
    e_cold = measure_consistency([c.images for c in cold], frames.split(1)).e_warp
    e_chain = measure_consistency(chained, frames.split(1)).e_warp

    h, w = frames.shape[-2:]
    print(f"\nwarm-start benchmark: {len(frames)} frames of {args.video.name} at {w}x{h}, VGG19 "
          f"({'given weights' if args.weights else 'generated weights'}), {args.steps} L-BFGS steps per cold frame")
    print(f"  steps a warm start needs to reach the cold run's final loss: median {statistics.median(needed)}, "
          f"per frame {needed}")
    print(f"  steps saved: {100 * (1 - statistics.median(needed) / args.steps):.0f}% (median)")
    print(f"  per-frame stylization: {cold_s / len(frames):.2f} s/frame, E_warp {e_cold:.6f}")
    print(f"  temporal chain (warm start + temporal loss, {chain.steps_after_first} steps after the first frame): "
          f"{chain_s / len(frames):.2f} s/frame, E_warp {e_chain:.6f} ({100 * (1 - e_chain / e_cold):.0f}% lower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
