"""Image sequences: a folder of numbered frames (the form film scans come in) read as a film.

A sequence is the image files directly under one folder (local or an object-store prefix; PNG,
TIFF incl. 16-bit, JPEG, ... by suffix), in the order of the number in each name (``f2.png``
before ``f10.png``). :func:`probe_sequence` lists it once and returns a
:class:`~colorstyle_core.video.VideoInfo` whose ``frame_uris`` name every frame, with timestamps
``0, 1, 2, ...`` in ticks of ``1 / fps`` seconds, so planning, frame ranges, keyframe hints and
the H.264 writer treat it as any film; :func:`read_sequence` decodes a range of it, and
:func:`input_frames` reads a range of either kind.

Frames are decoded to 8 bits per channel (a 16-bit scan is rounded: the colorizers work on 8-bit
frames, and outputs are 8-bit). Every frame must have the first frame's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import numpy as np

from colorstyle_core import imageio, storage
from colorstyle_core.video import VideoError, VideoInfo, read_frames

SEQUENCE_CODEC = "image-sequence"
"""``VideoInfo.codec`` of an image sequence."""


def frame_number(name: str) -> int | None:
    """The number in a frame's file name (its digits, joined: ``scan_0012.tif`` -> 12), ``None`` without one."""
    digits = "".join(re.findall(r"\d", storage.basename(name)))
    return int(digits) if digits else None


def numbered(names: list[str]) -> list[str]:
    """Frame names in the order of the numbers in them (``f2.png`` before ``f10.png``), then by name."""
    return sorted(names, key=lambda name: (frame_number(name) if frame_number(name) is not None else -1, name))


def list_frames(prefix: str, storage_options: dict | None) -> list[str]:
    """The URIs of the image files directly under ``prefix`` (by suffix:
    :data:`~colorstyle_core.imageio.IMAGE_SUFFIXES`), in numbered order (a listing request per 1000 files on S3).

    Raises:
        FileNotFoundError: no such folder.
        VideoError: it holds no frames.
    """
    if not storage.is_dir(prefix, storage_options):
        raise FileNotFoundError(f"{prefix}: no such folder")
    fs, path = storage.filesystem(prefix, storage_options)
    with storage.errors(prefix, "list"):
        names = [storage.unstrip(fs, p) for p in fs.ls(path, detail=False)
                 if p.lower().endswith(imageio.IMAGE_SUFFIXES)]
    if not names:
        raise VideoError(f"{prefix}: no frames (files ending in {', '.join(imageio.IMAGE_SUFFIXES)})")
    return numbered(names)


def probe_sequence(prefix: str, fps: Fraction, storage_options: dict | None = None) -> VideoInfo:
    """An image sequence as a film: its frames listed in numbered order, its size from the first frame's header.

    Args:
        prefix: the folder of frames.
        fps: frames per second (the frames carry no timing); the frame ``i`` is shown at ``i / fps`` seconds.
    Returns:
        ``frame_count`` frames, ``pts = 0 .. frame_count - 1`` in ``time_base = 1 / fps``, ``frame_uris`` in order.
    Raises:
        FileNotFoundError: no such folder.
        VideoError: no frames, two frames with the same number (their order is unknown), or the first frame is
            not an image; the message names the folder or the files.
    """
    if fps <= 0:
        raise ValueError(f"{prefix}: fps must be positive, got {fps}")
    uris = list_frames(prefix, storage_options)
    for a, b in zip(uris, uris[1:]):
        if frame_number(a) is not None and frame_number(a) == frame_number(b):
            raise VideoError(f"{prefix}: frames {storage.basename(a)} and {storage.basename(b)} have the same number "
                             f"({frame_number(a)}): their order is unknown")
    try:
        width, height = imageio.image_size(storage.read_bytes(uris[0], storage_options), uris[0])
    except imageio.ImageDecodeError as e:
        raise VideoError(f"{prefix}: first frame: {e}") from None
    rate = Fraction(fps)
    return VideoInfo(frame_count=len(uris), pts=tuple(range(len(uris))), time_base=1 / rate, average_rate=rate,
                     width=width, height=height, codec=SEQUENCE_CODEC, container="sequence",
                     frame_uris=tuple(uris))


def decode_frame(data: bytes, uri: str, index: int, size: tuple[int, int]) -> np.ndarray:
    """One frame of a sequence as ``(H, W, 3)`` uint8 (grey repeated; 16-bit rounded to 8 bits).

    Args:
        size: ``(width, height)`` every frame of the sequence has.
    Raises:
        VideoError: not an image, or another size; the message names the file and the frame.
    """
    try:
        decoded = imageio.decode_image(data, uri, keep_uint8=True)
    except imageio.ImageDecodeError as e:
        raise VideoError(f"frame {index}: {e}") from None
    pixels = decoded.pixels
    if pixels.dtype != np.uint8:  # 16-bit or float sources
        pixels = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    if (pixels.shape[1], pixels.shape[0]) != size:
        raise VideoError(f"{uri}: frame {index} is {pixels.shape[1]}x{pixels.shape[0]}; the sequence's frames are "
                         f"{size[0]}x{size[1]} (its first frame's size)")
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
    return rgb if rgb.flags.writeable and rgb.flags.c_contiguous else rgb.copy()  # Pillow's buffer is read-only


READ_AHEAD = 8
"""Frames of a sequence fetched at once (concurrently on object stores: one round trip for the lot, instead of
one per frame; the compressed files of that many frames are held at a time)."""


def read_sequence(info: VideoInfo, start: int, stop: int, storage_options: dict | None = None,
                  read_ahead: int = READ_AHEAD) -> Iterator[tuple[int, np.ndarray]]:
    """Decode frames ``start .. stop-1`` of an image sequence, fetching ``read_ahead`` files at a time
    (:func:`colorstyle_core.storage.read_many`).

    Yields:
        ``(index, rgb)`` with ``rgb`` ``(H, W, 3)`` uint8.
    Raises:
        ValueError: not a sequence, or a range outside its window.
        VideoError: a frame that does not decode or has another size (names the file).
        FileNotFoundError: a frame removed since the sequence was listed.
    """
    if not info.is_sequence or not info.first_index <= start < stop <= info.first_index + len(info.frame_uris or ()):
        raise ValueError(f"frames [{start}, {stop}) are not in this image sequence's window")
    for first in range(start, stop, max(1, read_ahead)):
        indices = range(first, min(first + max(1, read_ahead), stop))
        uris = [info.frame_uri(i) for i in indices]
        for index, uri, data in zip(indices, uris, storage.read_many(uris, storage_options)):
            yield index, decode_frame(data, uri, index, (info.width, info.height))


@contextmanager
def input_frames(uri: str, info: VideoInfo, start: int, stop: int, storage_options: dict | None = None
                 ) -> Iterator[Iterator[tuple[int, np.ndarray]]]:
    """Frames ``start .. stop-1`` of a film, a video file or an image sequence alike, as ``(index, (H, W, 3) uint8)``;
    a video's source stays open inside the ``with`` block.

    Raises:
        See :func:`read_sequence` and :func:`colorstyle_core.video.read_frames`.
    """
    if info.is_sequence:
        yield read_sequence(info, start, stop, storage_options)
        return
    with storage.open_source(uri, storage_options) as source:
        yield read_frames(source, info, start, stop, uri)
