"""Video and animated GIF I/O: probe, frame-accurate range decoding, segment encoding, assembly.

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

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np
from av.video.frame import PictureType
from PIL import Image

from colorstyle_core.encoders import h264_options

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
GIF_TIME_BASE = Fraction(1, 1000)  # GIF durations are kept in milliseconds
# audio codecs the MP4 muxer accepts as they are; others are re-encoded to AAC
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})

Source = str | BinaryIO


class VideoError(ValueError):
    """A video cannot be read (no video stream, unknown codec, truncated, corrupt); names the file."""


@dataclass(frozen=True)
class VideoInfo:
    """What the planner and the workers need to know about a video.

    Attributes:
        frame_count: number of frames (counted by demuxing, not trusted from the header).
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

    @property
    def is_gif(self) -> bool:
        return self.codec == "gif"

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
            first_index=start,
        )


def _open(source: Source, name: str):
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


def probe(source: Source, name: str) -> VideoInfo:
    """Read a video's frame count, timestamps, size, rate and audio codec without decoding frames.

    Args:
        source: local path or a seekable binary file object (e.g. an fsspec file).
        name: file name or URI for error messages.
    Raises:
        VideoError: not a video, no video stream, unknown codec, or no frames.
    """
    if _is_gif(source):
        return _probe_gif(source, name)
    with _open(source, name) as container:
        if not container.streams.video:
            raise VideoError(f"{name}: no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or ctx.codec is None or not ctx.width:
            raise VideoError(f"{name}: unknown or unsupported video codec")
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
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
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        return VideoInfo(
            frame_count=len(pts),
            pts=tuple(pts),
            time_base=Fraction(stream.time_base),
            average_rate=Fraction(rate),
            width=ctx.width,
            height=ctx.height,
            codec=ctx.name,
            container=container.format.name,
            audio_codec=audio,
        )


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
    with _open(source, name) as container:
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


def _pix_fmt(info: VideoInfo) -> str:
    return "yuv444p" if info.width % 2 or info.height % 2 else "yuv420p"


class SegmentWriter:
    """Encode one frame range into a local Matroska file.

    Films: H.264 (libx264, or NVENC on GPU nodes) with no B-frames. Final segments (``intermediate=False``) are
    encoded at the output's quality and joined by packet copy: ``yuv420p`` (4:4:4 when a
    side is odd, which 4:2:0 cannot hold). Intermediate segments are FFV1, exactly
    lossless (about 190 KB per 640x360 frame), decoded and encoded once at assembly, so
    the output has no key frame and no coding-error jump at range seams (a lossy
    intermediate would leave one: each range starts with an intra frame whose coding
    errors differ from the previous frame's). GIFs: FFV1 too, so the final palette is
    chosen from exact colours.

    Args:
        path: local output file.
        info: the source video (size, rate, time base, GIF or not).
        crf: H.264 constant rate factor (0 = lossless, 18 = visually lossless, 23 = x264 default).
        preset: x264 speed preset (``ultrafast`` .. ``veryslow``; mapped to NVENC's ``p1`` .. ``p7``).
        metadata: container tags (provenance, the UNTRAINED marker).
        encoder: ``libx264`` or ``h264_nvenc`` (see :func:`~colorstyle_core.encoders.h264_encoder`).
        threads: encoder threads (0 = the encoder's choice, about 1.5 per core); give a
            worker's CPU share so background encoding does not starve its model.
        intermediate: write a near-lossless segment for :func:`assemble` with ``reencode=True``.
    Raises:
        av.error.FFmpegError: ``h264_nvenc`` does not open (no GPU, driver or free session).
    """

    def __init__(self, path: str, info: VideoInfo, *, crf: int = 18, preset: str = "medium",
                 metadata: dict[str, str] | None = None, threads: int = 0, intermediate: bool = False,
                 encoder: str = "libx264"):
        self.info = info
        self._container = av.open(path, "w", format="matroska")
        for key, value in (metadata or {}).items():
            self._container.metadata[key] = value
        rate = info.average_rate or Fraction(25)
        if info.is_gif or intermediate:
            self._stream = self._container.add_stream("ffv1", rate=rate)
            self._stream.pix_fmt = "bgr0"
        else:
            self._stream = self._container.add_stream(encoder, rate=rate,
                                                      options=h264_options(encoder, crf, preset, threads,
                                                                            bframes=False))
            self._stream.pix_fmt = _pix_fmt(info)
        if info.is_gif or intermediate:
            self._stream.codec_context.thread_count = threads
        self._stream.width, self._stream.height = info.width, info.height
        self._stream.time_base = info.time_base
        self._stream.codec_context.time_base = info.time_base
        if encoder != "libx264" and not (info.is_gif or intermediate):
            try:  # a hardware encoder may refuse a session: say so now, not at the first frame
                self._stream.codec_context.open()
            except BaseException:
                self._container.close()
                raise
        self.frames = 0

    def write(self, rgb: np.ndarray, index: int) -> None:
        """Append frame ``index`` (``(H, W, 3)`` uint8) with its source timestamp."""
        if rgb.shape != (self.info.height, self.info.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame {index}: expected ({self.info.height}, {self.info.width}, 3) uint8, "
                             f"got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.info.pts_of(index)
        frame.time_base = self.info.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._container.close()


@dataclass(frozen=True)
class AssemblyReport:
    """What :func:`assemble` wrote.

    Attributes:
        frames: video frames written.
        audio: ``"copied"``, ``"re-encoded to aac (<codec> does not fit MP4)"``, or ``"none"``.
    """

    frames: int
    audio: str


def _numbered(items: Iterator, frame_indices: Sequence[int], name: str) -> Iterator[tuple[int, object]]:
    """Pair each packet or frame of the segments with its source frame index; check the count."""
    written = 0
    for item in items:
        if written == len(frame_indices):
            raise VideoError(f"{name}: segments hold more frames than the {len(frame_indices)} expected")
        yield frame_indices[written], item
        written += 1
    if written != len(frame_indices):
        raise VideoError(f"{name}: segments hold {written} frames, expected {len(frame_indices)}")


def _segment_items(segments: Sequence[Source], names: Sequence[str], decode: bool) -> Iterator:
    for seg, seg_name in zip(segments, names):
        with _open(seg, seg_name) as c:
            stream = c.streams.video[0]
            if decode:
                yield from c.decode(stream)
            else:
                yield from (p for p in c.demux(stream) if p.size)


def _segment_packets(segments: Sequence[Source], names: Sequence[str], info: VideoInfo,
                     frame_indices: Sequence[int], origin: int, stream, name: str) -> Iterator[av.Packet]:
    """Copy the segments' packets in order, stamped with their frames' source timestamps."""
    for index, packet in _numbered(_segment_items(segments, names, decode=False), frame_indices, name):
        packet.pts = packet.dts = info.pts_of(index) - origin
        packet.duration = info.frame_duration(index)
        packet.time_base = info.time_base
        packet.stream = stream
        yield packet


def _reencoded_packets(segments: Sequence[Source], names: Sequence[str], info: VideoInfo,
                       frame_indices: Sequence[int], origin: int, stream, name: str) -> Iterator[av.Packet]:
    """Decode the segments in order and encode them once more as one stream (no key frames at seams)."""
    for index, frame in _numbered(_segment_items(segments, names, decode=True), frame_indices, name):
        out = frame.reformat(format=stream.pix_fmt)
        out.pict_type = PictureType.NONE  # decoded FFV1 frames say "I": x264 would obey and code all intra
        out.pts = info.pts_of(index) - origin
        out.time_base = info.time_base
        yield from stream.encode(out)
    yield from stream.encode(None)


class _AudioTrack:
    """The source's first audio stream, copied (or re-encoded to AAC) between ``t0`` and ``t1`` seconds.

    With ``from_start`` (the output begins at the video's first frame) everything before
    ``t1`` is kept, including encoder-priming packets with negative timestamps.
    """

    def __init__(self, out, container, stream, t0: float, t1: float, from_start: bool):
        self.container, self.stream, self.t0, self.t1 = container, stream, t0, t1
        self.from_start = from_start
        codec = stream.codec_context.name
        self.copy = codec in _MP4_AUDIO
        if self.copy:
            self.out_stream = out.add_stream_from_template(stream)
            self.note = "copied"
        else:
            rate = stream.codec_context.sample_rate or 48000
            self.out_stream = out.add_stream("aac", rate=rate)
            self.out_stream.layout = stream.codec_context.layout
            self.resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
            self.note = f"re-encoded to aac ({codec} does not fit MP4)"

    def packets(self) -> Iterator[tuple[float, av.Packet]]:
        """``(seconds from t0, packet)`` in time order, ready to mux."""
        if not self.copy:
            yield from self._reencoded()
            return
        offset = round(self.t0 / self.stream.time_base)
        for packet in self.container.demux(self.stream):
            if packet.pts is None or not packet.size:
                continue
            t = float(packet.pts * self.stream.time_base)
            end = t + float((packet.duration or 0) * self.stream.time_base)
            if t >= self.t1 or (not self.from_start and end <= self.t0):
                continue
            packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            packet.stream = self.out_stream
            yield t - self.t0, packet

    def _reencoded(self) -> Iterator[tuple[float, av.Packet]]:
        for frame in self.container.decode(self.stream):
            t = frame.time
            if t is None or t >= self.t1 or (not self.from_start and t < self.t0):
                continue
            frame.pts = None  # the encoder numbers samples from 0
            for resampled in self.resampler.resample(frame):
                for packet in self.out_stream.encode(resampled):
                    yield t - self.t0, packet
        for packet in self.out_stream.encode(None):
            yield self.t1 - self.t0, packet


def assemble(
    segments: Sequence[Source],
    info: VideoInfo,
    frame_indices: Sequence[int],
    out_path: str,
    *,
    audio_source: Source | None = None,
    name: str = "video",
    metadata: dict[str, str] | None = None,
    reencode: bool = False,
    crf: int = 18,
    preset: str = "medium",
    threads: int = 0,
    encoder: str = "libx264",
) -> AssemblyReport:
    """Join segments, in order, into the final MP4 (or GIF) at ``out_path``.

    By default video packets are copied, not re-encoded, and stamped with the source
    timestamps of their frames (shifted so the output starts at 0). With ``reencode``
    the (intermediate) segments are decoded and encoded once more as one H.264 stream
    at ``crf``/``preset``, so no key frame marks the seams between ranges. The source's
    first audio stream is copied for the same time span and interleaved by time; codecs
    MP4 cannot hold (PCM, ...) are re-encoded to AAC. Segments whose streams were set up
    differently (their codec headers differ: ranges encoded by NVENC on one node and x264 on
    another, or with another preset by an earlier run) cannot be joined by packet copy; they
    are re-encoded the same way.

    Args:
        segments: segment files from :class:`SegmentWriter`, in frame order.
        info: the source video.
        frame_indices: the source frame index of every frame across the segments, in order.
        out_path: local output path (``.mp4`` for films, ``.gif`` for GIFs).
        audio_source: the source video, to take its audio from (films only).
        name: for error messages.
        metadata: container tags for the output (films).
        reencode, crf, preset, threads: see above (``threads`` 0 = x264's choice).
        encoder: the H.264 encoder of a re-encode (:func:`~colorstyle_core.encoders.h264_encoder`).
    Raises:
        VideoError: when the segments hold a different number of frames than
            ``frame_indices`` (a lost or duplicated range), or a file cannot be read.
    """
    if not frame_indices:
        raise VideoError(f"{name}: no frames to assemble")
    names = [f"{name} segment {i}" for i in range(len(segments))]
    if info.is_gif:
        return _assemble_gif(segments, names, info, frame_indices, out_path)
    reencode = reencode or not _same_stream_setup(segments, names)
    tb = info.time_base
    origin = info.pts_of(frame_indices[0])
    end = info.pts_of(frame_indices[-1]) + info.frame_duration(frame_indices[-1])
    with ExitStack() as stack:
        out = stack.enter_context(av.open(out_path, "w", format="mp4"))
        for key, value in (metadata or {}).items():
            out.metadata[key] = value
        if reencode:
            video_out = out.add_stream(encoder, rate=info.average_rate or Fraction(25),
                                       options=h264_options(encoder, crf, preset, threads, bframes=True))
            video_out.width, video_out.height, video_out.pix_fmt = info.width, info.height, _pix_fmt(info)
            video_out.codec_context.time_base = tb
            source = _reencoded_packets
        else:
            template = stack.enter_context(_open(segments[0], names[0])).streams.video[0]
            video_out = out.add_stream_from_template(template)
            source = _segment_packets
        video_out.time_base = tb
        audio = None
        if audio_source is not None:
            src = stack.enter_context(_open(audio_source, name))
            if src.streams.audio:
                audio = _AudioTrack(out, src, src.streams.audio[0], float(origin * tb), float(end * tb),
                                    from_start=frame_indices[0] == 0)
        pending = audio.packets() if audio else iter(())
        next_audio = next(pending, None)
        for packet in source(segments, names, info, frame_indices, origin, video_out, name):
            now = float((packet.dts if packet.dts is not None else packet.pts or 0) * packet.time_base)
            while next_audio is not None and next_audio[0] <= now:
                out.mux(next_audio[1])
                next_audio = next(pending, None)
            out.mux(packet)
        while next_audio is not None:
            out.mux(next_audio[1])
            next_audio = next(pending, None)
        return AssemblyReport(len(frame_indices), audio.note if audio else "none")


def _same_stream_setup(segments: Sequence[Source], names: Sequence[str]) -> bool:
    """Whether every segment's video stream has the first one's codec and codec header (SPS/PPS)."""
    first = None
    for segment, name in zip(segments, names):
        with _open(segment, name) as container:
            ctx = container.streams.video[0].codec_context
            setup = (ctx.name, bytes(ctx.extradata or b""), ctx.width, ctx.height, ctx.pix_fmt)
        if hasattr(segment, "seek"):
            segment.seek(0)  # read again when joined
        if first is None:
            first = setup
        elif setup != first:
            return False
    return True


def _assemble_gif(segments, names, info: VideoInfo, frame_indices: Sequence[int], out_path: str) -> AssemblyReport:
    """Quantise each frame to its own 256-colour palette and write the GIF with the source's durations."""
    assert info.durations_ms is not None
    it = (Image.fromarray(frame.to_ndarray(format="rgb24")).quantize(
              256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
          for _, frame in _numbered(_segment_items(segments, names, decode=True), frame_indices, out_path))
    first = next(it)
    durations = [info.durations_ms[i - info.first_index] for i in frame_indices]
    extra = {"loop": info.loop} if info.loop is not None else {}
    first.save(out_path, format="GIF", save_all=True, append_images=it, duration=durations,
               disposal=1, optimize=False, **extra)
    return AssemblyReport(len(frame_indices), "none")
