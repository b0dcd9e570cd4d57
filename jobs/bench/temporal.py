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
from colorstyle_core.style.gatys import StyleConfig, Stylizer
from colorstyle_core.temporal import StyleChain, TemporalSettings, measure_consistency
from colorstyle_core.video import probe, read_frames

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_temporal", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, default=SHARED / "video" / "dev_kenburns_gray.mp4")
    p.add_argument("--style", type=Path, default=SHARED / "style" / "color" / "great_wave_hokusai.jpg")
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--size", type=int, default=128, help="processing size, longer side (px)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--weights", help="VGG19 checkpoint URI (default: generated weights)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
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
