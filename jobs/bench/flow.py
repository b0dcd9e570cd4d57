"""Benchmark: optical flow per frame pair (forward + backward + consistency mask).

Times :func:`colorstyle_core.flow.bidirectional_flow` (``F_{t->t+1}``,
``F_{t+1->t}`` and the Ruder et al. mask; what E_warp and the temporal style prior
need per pair) on consecutive real frames of the shared test video, at 640x360
(the video's size) and 1280x720 (frames upscaled with bicubic interpolation), for
every DIS preset and Farneback. Decoding, resizing and the gray -> L conversion are
done before timing. Prints one row per (size, method) with the median, fastest and
slowest time per pair over all timed pairs (after one warm-up call).

    PYTHONPATH=. python jobs/bench/flow.py [--pairs 8] [--sizes 640x360,1280x720] [--threads N]

Timings depend on the load of the machine: the load average is printed with them
(on a busy machine ``--threads 1`` gives steadier numbers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jobs.bench import SHARED_DATA

METHODS = (("dis", "ultrafast"), ("dis", "fast"), ("dis", "medium"), ("farneback", None))


def default_video() -> Path:
    return SHARED_DATA / "video" / "dev_kenburns_gray.mp4"


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)`` (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_flow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=None,
                        help="grayscale video to take frames from (default: $COLORSTYLE_SHARED/data/video/"
                        "dev_kenburns_gray.mp4, COLORSTYLE_SHARED defaulting to <repo>/../shared)")
    parser.add_argument("--pairs", type=int, default=8, help="consecutive frame pairs timed per configuration "
                        "(default: 8)")
    parser.add_argument("--start", type=int, default=8, help="first frame used (default: 8, mid-pan of shot 1)")
    parser.add_argument("--sizes", type=lambda s: [parse_size(v) for v in s.split(",")],
                        default=[(640, 360), (1280, 720)], help="comma-separated WxH (default: 640x360,1280x720)")
    parser.add_argument("--threads", type=int, default=None,
                        help="set torch and OpenCV thread counts first (default: leave the libraries' defaults)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit without timing")
    return parser


def load_frames(video: Path, start: int, count: int):
    """``count`` consecutive frames from ``start`` as (H, W) uint8 full-range gray arrays."""
    import av
    import numpy as np

    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                y = frame.to_ndarray(format="gray").astype(np.float32)
                # BT.601 limited range (Y 16-235) -> full range, as the pipeline reads it.
                frames.append(np.clip((y - 16.0) * (255.0 / 219.0), 0, 255).round().astype(np.uint8))
            if len(frames) == count:
                break
    if len(frames) < count:
        raise ValueError(f"{video} has fewer than {start + count} frames")
    return frames


def to_lightness(frames, size: tuple[int, int]):
    """Resize uint8 gray frames to ``size`` (W, H) and convert to ``(T, 1, H, W)`` L."""
    import cv2
    import numpy as np
    import torch

    from colorstyle_core.color import rgb_to_l

    resized = [f if (f.shape[1], f.shape[0]) == size else
               cv2.resize(f, size, interpolation=cv2.INTER_CUBIC if size[0] > f.shape[1] else cv2.INTER_AREA)
               for f in frames]
    gray = torch.from_numpy(np.stack(resized)).float().div(255.0)[:, None]
    return rgb_to_l(gray)


def time_pairs(lightness, method: str, preset: str | None) -> list[tuple[float, float]]:
    """``(flow seconds, mask seconds)`` per consecutive pair, after a warm-up pair.

    The same work as ``flow.bidirectional_flow``, with its two stages timed apart:
    ``estimate_flow`` both ways, then ``consistency_mask``.
    """
    from colorstyle_core.flow import bidirectional_flow, consistency_mask, estimate_flow

    bidirectional_flow(lightness[0], lightness[1], method, preset)
    times = []
    for t in range(lightness.shape[0] - 1):
        t0 = time.perf_counter()
        fwd = estimate_flow(lightness[t], lightness[t + 1], method, preset)
        bwd = estimate_flow(lightness[t + 1], lightness[t], method, preset)
        t1 = time.perf_counter()
        consistency_mask(fwd, bwd)
        times.append((t1 - t0, time.perf_counter() - t1))
    return times


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    video = args.video or default_video()
    if args.pairs < 1:
        print("--pairs must be >= 1", file=sys.stderr)
        return 2
    configs = [(size, m, p) for size in args.sizes for m, p in METHODS]
    if args.dry_run:
        print(f"would time {args.pairs} pairs from frame {args.start} of {video} for:")
        for (w, h), m, p in configs:
            print(f"  {w}x{h} {m}{':' + p if p else ''}")
        return 0
    if not video.exists():
        print(f"video not found: {video} (set COLORSTYLE_SHARED or pass --video)", file=sys.stderr)
        return 2

    import cv2
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    frames = load_frames(video, args.start, args.pairs + 1)
    print(f"video {video.name}: frames {args.start}-{args.start + args.pairs}, {args.pairs} pairs per row")
    print(f"threads: torch {torch.get_num_threads()}, OpenCV {cv2.getNumThreads()}; cpu count {os.cpu_count()}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("per pair: fwd + bwd flow + consistency mask; median / min / max over pairs, and the median of each stage")
    print(f"{'size':>10} {'method':<15} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'pairs/s':>8} "
          f"{'flow ms':>8} {'mask ms':>8}")
    for size in args.sizes:
        lightness = to_lightness(frames, size)
        for method, preset in METHODS:
            stages = time_pairs(lightness, method, preset)
            totals = [f + m for f, m in stages]
            med = statistics.median(totals)
            flow_med = statistics.median(f for f, _ in stages)
            mask_med = statistics.median(m for _, m in stages)
            name = method + (f":{preset}" if preset else "")
            print(f"{size[0]:>5}x{size[1]:<4} {name:<15} {med * 1e3:>10.1f} {min(totals) * 1e3:>8.1f} "
                  f"{max(totals) * 1e3:>8.1f} {1 / med:>8.1f} {flow_med * 1e3:>8.1f} {mask_med * 1e3:>8.1f}",
                  flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
