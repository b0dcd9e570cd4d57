"""``colorstyle hints show``: a video's keyframe hints drawn on its frames, as they are carried through each shot;
``colorstyle hints make``: colour keyframes taken from a colour version of a video.

Every hint point is a dot in its keyframe's colour (ab at the frame's own lightness)
with a white ring; a point that counts less (between two keyframes) is drawn smaller.
A bar at the top says the frame, its shot and how many points reached it; the first
frame of a shot is outlined. The same code the job runs (:func:`colorstyle_core.keyframes.propagate`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import cv2
import numpy as np
import torch

from colorstyle_core import color, imageio, storage
from colorstyle_core.hints import check_keyframes, keyframe_points, parse_hints
from colorstyle_core.keyframes import HintPoint, propagate
from colorstyle_core.segments import SegmentWriter, assemble
from colorstyle_core.video import probe, read_frames


def _frame_l(rgb: np.ndarray) -> torch.Tensor:
    return color.rgb_to_l(imageio.to_tensor(rgb.astype(np.float32) / 255.0))


def draw_hints(rgb: np.ndarray, hints: list[HintPoint], frame: int, shot: int, new_shot: bool) -> np.ndarray:
    """``rgb`` (``(H, W, 3)`` uint8) with ``hints`` drawn on it (a copy)."""
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    lightness = _frame_l(rgb)[0, 0]
    for p in hints:
        y, x = int(round(p.y)), int(round(p.x))
        if not (0 <= y < h and 0 <= x < w):
            continue
        lab = torch.tensor([float(lightness[y, x]), p.a, p.b]).view(1, 3, 1, 1)
        dot = tuple(int(v) for v in color.to_uint8(color.lab_to_rgb(lab))[0, :, 0, 0])
        radius = max(2, round(3 + 3 * p.weight))
        cv2.circle(out, (x, y), radius + 1, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.circle(out, (x, y), radius, dot, -1, cv2.LINE_AA)
    cv2.rectangle(out, (0, 0), (w - 1, 18), (0, 0, 0), -1)
    cv2.putText(out, f"frame {frame}  shot {shot}  hints {len(hints)}", (6, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (255, 255, 255), 1, cv2.LINE_AA)
    if new_shot:
        cv2.rectangle(out, (0, 0), (w - 1, h - 1), (255, 64, 64), 3)
    return out


def cmd_hints_show(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    with storage.open_source(args.video, opts) as source:
        info = probe(source, args.video)
    start, stop = 0, info.frame_count
    if args.frames:
        a, _, b = args.frames.partition(":")
        start, stop = int(a or 0), int(b or info.frame_count)
    hints = parse_hints(storage.read_bytes(args.hints, opts).decode("utf-8"), args.hints)
    check_keyframes(hints, (start, stop), (info.width, info.height),
                    {uri: imageio.image_size(storage.read_bytes(uri, opts), uri)
                     for k in hints.keyframes for uri in (k.image, k.mask) if uri})

    def image_ab(k):
        ab = mask = None
        if k.image:
            rgb = imageio.to_tensor(imageio.decode_image(storage.read_bytes(k.image, opts), k.image).pixels)
            ab = color.rgb_to_lab(rgb.expand(-1, 3, -1, -1) if rgb.shape[1] == 1 else rgb)[:, 1:]
        if k.mask:
            m = imageio.to_tensor(imageio.decode_image(storage.read_bytes(k.mask, opts), k.mask).pixels)
            mask = (m.amax(dim=1, keepdim=True) > 0).float()
        return ab, mask

    def read(a: int, b: int):
        with storage.open_source(args.video, opts) as video:
            for index, rgb in read_frames(video, info, a, b, args.video):
                yield index, _frame_l(rgb)

    points = {k.frame: keyframe_points(k, *image_ab(k), lightness=next(read(k.frame, k.frame + 1))[1]
                                       if k.image else None) for k in hints.keyframes}

    carried = propagate(read, hints.keyframes, start, stop, points_of=lambda k: points[k.frame], name=args.hints)
    with tempfile.TemporaryDirectory(prefix="colorstyle-hints-") as tmp:
        segment = os.path.join(tmp, "segment.mkv")
        shot = 1
        with SegmentWriter(segment, info.window(start, stop), crf=args.crf) as writer, \
                storage.open_source(args.video, opts) as video:
            for index, rgb in read_frames(video, info, start, stop, args.video):
                new_shot = index in carried.cuts
                shot += new_shot
                writer.write(draw_hints(rgb, carried.hints.get(index, []), index, shot, new_shot), index)
        local = os.path.join(tmp, "hints.mp4")
        assemble([segment], info, list(range(start, stop)), local, name=args.video)
        storage.copy_file_atomic(local, args.output, opts)
    reached = len(carried.hints)
    print(f"{args.output}: {len(hints.keyframes)} keyframe(s) {[k.frame for k in hints.keyframes]}, hints on "
          f"{reached} of {stop - start} frames, scene cuts at {carried.cuts or 'none'}")
    for k in hints.keyframes:
        kept = carried.kept.get(k.frame, {})
        if kept:
            far = max(kept, key=lambda f: abs(f - k.frame))
            print(f"  keyframe {k.frame}: {len(points[k.frame])} points; {kept[far]} still tracked at frame {far}")
    return 0


def cmd_hints_make(args: argparse.Namespace) -> int:
    """Colour keyframes from a colour version of a video: PNG frames and the hints file naming them."""
    opts = storage.parse_options(args.storage_options)
    wanted = sorted({int(v) for v in args.frames.split(",") if v.strip()})
    with storage.open_source(args.colour_video, opts) as source:
        info = probe(source, args.colour_video)
        keyframes = []
        for index in wanted:
            if not 0 <= index < info.frame_count:
                raise ValueError(f"frame {index} is not in {args.colour_video} ({info.frame_count} frames)")
            rgb = next(read_frames(source, info, index, index + 1, args.colour_video))[1]
            uri = storage.join_under(args.out, "keyframes", f"{args.name}.{index:06d}.png")
            storage.write_bytes_atomic(uri, imageio.encode_image(rgb, uri), opts)
            keyframes.append({"frame": index, "image": uri})
    hints_uri = storage.join_under(args.out, f"{args.name}.json")
    storage.write_bytes_atomic(hints_uri, json.dumps({"keyframes": keyframes}, indent=2).encode(), opts)
    print(hints_uri)
    return 0


def add_hints_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``hints show`` and ``hints make``."""
    hints = sub.add_parser("hints", help="keyframe colour hints for videos").add_subparsers(dest="hints_cmd",
                                                                                          required=True)
    p = hints.add_parser("show", help="draw a video's keyframe hints on its frames, carried through each shot",
                         description="Carry the keyframes of HINTS.json through VIDEO's shots as a job does and "
                         "write OUT.mp4 with every hint point drawn where it went.")
    p.add_argument("video")
    p.add_argument("hints", metavar="HINTS.json")
    p.add_argument("output", metavar="OUT.mp4")
    p.add_argument("--frames", metavar="START:STOP", help="only these frames (default: all)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality of OUT.mp4 (default 18)")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec options for the URIs")
    p.set_defaults(func=cmd_hints_show)
    p = hints.add_parser("make", help="colour keyframes taken from a colour version of the video",
                         description="Write frames FRAMES of COLOUR_VIDEO as PNG keyframes under OUT/keyframes/ and "
                         "OUT/NAME.json naming them: a hints file for the grey video NAME (put OUT in "
                         "pipeline.colorize.hints).")
    p.add_argument("colour_video")
    p.add_argument("--frames", required=True, metavar="F1,F2", help="the keyframes, e.g. the first frame of each shot")
    p.add_argument("--out", required=True, metavar="PREFIX", help="the hints prefix")
    p.add_argument("--name", required=True, help="relative path of the grey video the hints are for (film.mp4)")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec options for the URIs")
    p.set_defaults(func=cmd_hints_make)
