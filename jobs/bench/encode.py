"""Benchmark: the encoder's share of a frame, per x264 preset, at one CRF (``output.video_preset``).

Encodes the same decoded frames (a video, scaled to ``--height``; default the example video
at 1080p) with :class:`colorstyle_core.segments.SegmentWriter` -- the job's own segment encoder --
once per preset, and prints seconds per frame (wall, and CPU core-seconds of this process) and
the size of the result. Asserts nothing.

``python -m jobs.bench.encode [--presets medium veryfast] [--crf 18] [--height 1080] [--threads 2]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from colorstyle_core.segments import SegmentWriter
from colorstyle_core.video import probe, read_frames
from jobs.bench import SHARED_DATA

SHARED = SHARED_DATA


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_encode", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default=str(SHARED / "video" / "dev_kenburns_color.mp4"))
    p.add_argument("--presets", nargs="+", default=["medium", "veryfast"])
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--threads", type=int, default=2, help="encoder threads (an actor's CPU share)")
    args = p.parse_args(argv)
    info = probe(args.video, args.video)
    width = round(info.width * args.height / info.height / 2) * 2
    frames = [np.asarray(Image.fromarray(rgb).resize((width, args.height), Image.BICUBIC))
              for _, rgb in read_frames(args.video, info, 0, info.frame_count, args.video)]
    scaled = dataclasses.replace(info, width=width, height=args.height)
    print(f"{len(frames)} frames of {width}x{args.height}, CRF {args.crf}, {args.threads} encoder thread(s)")
    with tempfile.TemporaryDirectory(prefix="colorstyle-bench-encode-") as tmp:
        for preset in args.presets:
            path = os.path.join(tmp, f"{preset}.mkv")
            cpu, wall = time.process_time(), time.perf_counter()
            with SegmentWriter(path, scaled, crf=args.crf, preset=preset, threads=args.threads) as writer:
                for k, rgb in enumerate(frames):
                    writer.write(rgb, k)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            size = os.path.getsize(path)
            print(f"  {preset:9s} {wall / len(frames) * 1000:7.1f} ms/frame wall, {cpu / len(frames) * 1000:7.1f} ms "
                  f"CPU core-time/frame, {size / 1e6:7.2f} MB ({size * 8 / len(frames) / 1e3:.0f} kbit/frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
