"""Reading video and animated GIFs: probe (every frame's timestamp), frame-accurate range decoding.

Writing (a frame range's segment, and a video's segments joined into its output) is
:mod:`colorstyle_core.segments`.


Films (MP4, MOV, AVI, MKV, WebM, ...) go through PyAV. A frame range is encoded on
its own as H.264 without B-frames (decode order = presentation order), so ranges
processed by different workers join by copying their packets in order, stamped
with the source's exact timestamps: no re-encoding, no generation loss, and the
output keeps the source's frame count, timing (also variable frame rate), size
and audio stream (copied unchanged). Animated GIFs go through Pillow, which keeps
each frame's duration and the loop count; their ranges are staged losslessly (FFV1).

Nothing here holds a whole video: frames stream through one at a time (a GIF's
paletted frames, one byte per pixel, are the exception Pillow's writer needs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np
from PIL import Image

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
GIF_TIME_BASE = Fraction(1, 1000)  # GIF durations are kept in milliseconds

Source = str | BinaryIO


class VideoError(ValueError):
    """A video cannot be read (no video stream, unknown codec, truncated, corrupt); names the file."""


@dataclass(frozen=True)
class VideoInfo:
    """What the planner and the workers need to know about a video.

    Attributes:
        frame_count: number of frames (from every frame's timestamp: demuxed, or an MP4/MOV's index).
        pts: presentation timestamps of all frames in ``time_base`` units, ascending.
        time_base: unit of ``pts`` (seconds per tick).
        average_rate: frames per second (the output's nominal rate).
        width, height: frame size in pixels.
        codec: video codec name; ``"gif"`` for animated GIFs.
        container: container format name.
        audio_codec: codec of the first audio stream, or ``None``.
        durations_ms: GIF only: each frame's duration in milliseconds.
        loop: GIF only: loop count (0 = forever), ``None`` if the file has none.
        first_index: index of the frame ``pts[0]`` (and ``durations_ms[0]``) belongs to:
            0 for a whole video, more for a :meth:`window` (what a frame-range unit carries).
        estimated: the frame count and timestamps are what the header states (:func:`probe_header`, dry runs),
            not every frame's own.
        frame_uris: an image sequence (:mod:`colorstyle_core.sequences`): the URI of each frame of this info
            (from ``first_index``), in frame order; ``None`` for a video file.
    """

    frame_count: int
    pts: tuple[int, ...]
    time_base: Fraction
    average_rate: Fraction
    width: int
    height: int
    codec: str
    container: str
    audio_codec: str | None = None
    durations_ms: tuple[int, ...] | None = None
    loop: int | None = None
    first_index: int = 0
    estimated: bool = False
    frame_uris: tuple[str, ...] | None = None

    @property
    def is_gif(self) -> bool:
        return self.codec == "gif"

    @property
    def is_sequence(self) -> bool:
        """A folder of numbered frames, not a video file."""
        return self.frame_uris is not None

    def frame_uri(self, index: int) -> str:
        """An image sequence's file for frame ``index``.

        Raises:
            IndexError: not a sequence, or a frame outside this info's window.
        """
        i = index - self.first_index
        if self.frame_uris is None or not 0 <= i < len(self.frame_uris):
            raise IndexError(f"frame {index} is not a file of this sequence window")
        return self.frame_uris[i]

    def pts_of(self, index: int) -> int:
        """Presentation timestamp of frame ``index`` (``time_base`` ticks).

        Raises:
            IndexError: for a frame outside the video or outside this window.
        """
        i = index - self.first_index
        if not 0 <= i < len(self.pts):
            raise IndexError(f"frame {index} is not in this video window "
                             f"[{self.first_index}, {self.first_index + len(self.pts)})")
        return self.pts[i]

    def frame_duration(self, index: int) -> int:
        """Duration of frame ``index`` in ``time_base`` ticks (the last frame: the mean frame duration)."""
        i = index - self.first_index
        if 0 <= i and i + 1 < len(self.pts):
            return self.pts[i + 1] - self.pts[i]
        rate = self.average_rate * self.time_base
        return max(1, round(1 / rate)) if rate else 1

    def window(self, start: int, stop: int) -> VideoInfo:
        """This info with timestamps only for frames ``start .. stop`` (one past the range,
        for the last frame's duration): small enough to ship with every work unit."""
        lo, hi = start - self.first_index, min(stop + 1, self.first_index + len(self.pts)) - self.first_index
        return replace(
            self,
            pts=self.pts[lo:hi],
            durations_ms=self.durations_ms[lo:hi] if self.durations_ms else None,
            frame_uris=self.frame_uris[lo:hi] if self.frame_uris is not None else None,
            first_index=start,
        )


def open_container(source: Source, name: str):
    """``av.open(source)`` for reading; a file that is not a video raises :class:`VideoError` naming it."""
    try:
        return av.open(source, "r")
    except av.error.FFmpegError as e:
        raise VideoError(f"{name}: cannot open as a video ({e})") from None


def _is_gif(source: Source) -> bool:
    if isinstance(source, str):
        with open(source, "rb") as f:
            head = f.read(6)
    else:
        pos = source.tell()
        head = source.read(6)
        source.seek(pos)
    return head in (b"GIF87a", b"GIF89a")


def _video_stream(container, name: str):
    """The first video stream, its codec context and the first audio stream's codec name.

    Raises:
        VideoError: no video stream, or an unknown codec.
    """
    if not container.streams.video:
        raise VideoError(f"{name}: no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None or not ctx.width:
        raise VideoError(f"{name}: unknown or unsupported video codec")
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return stream, ctx, audio


def _info(container, stream, ctx, audio: str | None, pts: list[int]) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or Fraction(0)
    return VideoInfo(frame_count=len(pts), pts=tuple(pts), time_base=Fraction(stream.time_base),
                     average_rate=Fraction(rate), width=ctx.width, height=ctx.height, codec=ctx.name,
                     container=container.format.name, audio_codec=audio)


def probe(source: Source, name: str) -> VideoInfo:
    """Read a video's frame count, timestamps, size, rate and audio codec by demuxing every packet (no decoding).

    Reads the whole file; :func:`probe_index` reads a few MB where the container indexes every frame.

    Args:
        source: local path or a seekable binary file object (e.g. an fsspec file).
        name: file name or URI for error messages.
    Raises:
        VideoError: not a video, no video stream, unknown codec, or no frames.
    """
    if _is_gif(source):
        return _probe_gif(source, name)
    with open_container(source, name) as container:
        stream, ctx, audio = _video_stream(container, name)
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is not None and packet.size:
                    pts.append(ts)
        except av.error.FFmpegError as e:
            raise VideoError(f"{name}: corrupt or truncated while reading packets ({e})") from None
        if not pts:
            raise VideoError(f"{name}: the video stream has no frames")
        pts.sort()
        return _info(container, stream, ctx, audio, pts)


MOV_FAMILY = "mov"
"""FFmpeg's demuxer of MP4, MOV, M4V, 3GP: their sample tables, read with the header, index every frame."""


def probe_index(source: Source, name: str) -> VideoInfo | None:
    """A video's :class:`VideoInfo` from its header and index alone, where they give every frame's timestamp.

    MP4 and MOV hold a sample table in their header (the ``moov`` box): an entry per frame, read with
    the header, so this reads a few MB however long the film is (:func:`probe` demuxes every packet).
    The table gives decode timestamps; presentation timestamps follow where the stream has no B-frames
    (they are the same, shifted to the stream's start), or where its frames come at a constant rate
    (the stream's start plus one frame duration per frame). Anything else (other containers, whose
    index, if any, lists key frames only; B-frames at a variable rate) returns ``None``: the caller
    probes by demuxing. A frame that turns out different where it is decoded makes
    :func:`read_frames` raise :class:`VideoError` (never a frame lost or doubled silently).

    Args:
        source: local path or a seekable binary file object (read lazily: only what the demuxer asks for).
        name: file name or URI for error messages.
    Raises:
        VideoError: not a video, no video stream, unknown codec.
    """
    if _is_gif(source):
        return None
    with open_container(source, name) as container:
        if MOV_FAMILY not in container.format.name.split(","):
            return None
        stream, ctx, audio = _video_stream(container, name)
        entries = [e for e in stream.index_entries if not e.is_discard]
        if not entries or stream.frames != len(entries):
            return None
        dts = [e.timestamp for e in entries]
        if any(b <= a for a, b in zip(dts, dts[1:])):
            return None
        start = stream.start_time if stream.start_time is not None else dts[0]
        steps = {b - a for a, b in zip(dts, dts[1:])}
        if not ctx.has_b_frames:
            pts = [t - dts[0] + start for t in dts]
        elif len(steps) <= 1:
            step = steps.pop() if steps else 1
            pts = [start + i * step for i in range(len(dts))]
        else:
            return None
        return _info(container, stream, ctx, audio, pts)


def probe_header(source: Source, name: str) -> VideoInfo:
    """What a film's header says, reading a few MB (dry runs, ``colorstyle validate``).

    MP4/MOV: :func:`probe_index`'s exact answer. Other containers: the header's frame count (or its
    duration times the rate) and timestamps on a constant-rate grid from the stream's start, marked
    ``estimated``: a job probes such a film exactly (:func:`probe`) before it cuts its ranges.

    Raises:
        VideoError: not a video, no video stream, unknown codec, no frame count or duration in the header.
    """
    if _is_gif(source):
        return _probe_gif(source, name)
    exact = probe_index(source, name)
    if exact is not None:
        return exact
    if hasattr(source, "seek"):
        source.seek(0)
    with open_container(source, name) as container:
        stream, ctx, audio = _video_stream(container, name)
        rate = stream.average_rate or stream.guessed_rate
        tb = Fraction(stream.time_base)
        frames = stream.frames
        if not frames and rate and stream.duration:
            frames = round(stream.duration * tb * rate)
        elif not frames and rate and container.duration:
            frames = round(container.duration / av.time_base * rate)
        if not frames or not rate:
            raise VideoError(f"{name}: the header gives no frame count or duration")
        step = max(1, round(1 / (Fraction(rate) * tb)))
        start = stream.start_time or 0
        return replace(_info(container, stream, ctx, audio, [start + i * step for i in range(frames)]),
                       estimated=True)


def _probe_gif(source: Source, name: str) -> VideoInfo:
    try:
        with Image.open(source) as img:
            durations = []
            for i in range(getattr(img, "n_frames", 1)):
                img.seek(i)
                durations.append(int(img.info.get("duration", 100)) or 100)
            loop = img.info.get("loop")
            size = img.size
    except (OSError, SyntaxError, ValueError) as e:
        raise VideoError(f"{name}: corrupt or truncated GIF ({e})") from None
    starts = np.concatenate(([0], np.cumsum(durations)[:-1])).astype(int)
    mean_ms = sum(durations) / len(durations)
    return VideoInfo(
        frame_count=len(durations),
        pts=tuple(int(s) for s in starts),
        time_base=GIF_TIME_BASE,
        average_rate=Fraction(1000) / Fraction(mean_ms).limit_denominator(1000),
        width=size[0],
        height=size[1],
        codec="gif",
        container="gif",
        durations_ms=tuple(durations),
        loop=loop,
    )


def read_frames(source: Source, info: VideoInfo, start: int, stop: int, name: str) -> Iterator[tuple[int, np.ndarray]]:
    """Decode frames ``start .. stop-1`` (frame-accurate), one at a time.

    For films, seeks to the key frame at or before ``start`` and decodes forward,
    matching frames by their presentation timestamp, so the result is exact with
    B-frames and variable frame rates.

    Args:
        source: local path or seekable binary file object.
        info: the video's :class:`VideoInfo` (from :func:`probe`).
        start, stop: frame index range, ``0 <= start < stop <= info.frame_count``.
        name: for error messages.
    Yields:
        ``(index, rgb)`` with ``rgb`` ``(H, W, 3)`` uint8.
    Raises:
        ValueError: for a range outside the video.
        VideoError: when decoding fails or ends before ``stop`` (truncated file).
    """
    if not 0 <= start < stop <= info.frame_count:
        raise ValueError(f"{name}: frame range [{start}, {stop}) is outside the video's {info.frame_count} frames")
    if info.is_gif:
        yield from _read_gif_frames(source, start, stop, name)
        return
    wanted = {info.pts_of(i): i for i in range(start, stop)}
    last_pts = info.pts_of(stop - 1)
    next_index = start
    with open_container(source, name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            if start > 0:
                container.seek(info.pts_of(start), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                ts = frame.pts if frame.pts is not None else frame.dts
                index = wanted.get(ts)
                if index is None:
                    if ts is not None and ts > last_pts:
                        break
                    continue
                if index != next_index:
                    raise VideoError(f"{name}: frame {next_index} is missing from the decoded stream")
                yield index, frame.to_ndarray(format="rgb24")
                next_index += 1
                if next_index == stop:
                    return
        except av.error.FFmpegError as e:
            raise VideoError(f"{name}: decoding failed near frame {next_index} ({e})") from None
    raise VideoError(f"{name}: truncated: decoding ended at frame {next_index}, expected frames up to {stop - 1}")


def _read_gif_frames(source: Source, start: int, stop: int, name: str) -> Iterator[tuple[int, np.ndarray]]:
    try:
        with Image.open(source) as img:
            for i in range(start, stop):
                img.seek(i)
                yield i, np.asarray(img.convert("RGB"))
    except (OSError, EOFError, ValueError) as e:
        raise VideoError(f"{name}: GIF decoding failed ({e})") from None
