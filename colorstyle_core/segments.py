"""Writing video: a frame range encoded into a segment, and a video's segments joined into its output.

A frame range is encoded on its own as H.264 without B-frames (decode order = presentation
order), so ranges processed by different workers join by copying their packets in order,
stamped with the source's exact timestamps: no re-encoding, no generation loss, and the
output keeps the source's frame count, timing (also variable frame rate), size and audio
stream (copied unchanged). Animated GIFs keep each frame's duration and the loop count; their
ranges are staged losslessly (FFV1). Reading is :mod:`colorstyle_core.video`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType
from PIL import Image

from colorstyle_core.encoders import h264_options
from colorstyle_core.video import Source, VideoError, VideoInfo, open_container

# audio codecs the MP4 muxer accepts as they are; others are re-encoded to AAC
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


def _pix_fmt(info: VideoInfo) -> str:
    return "yuv444p" if info.width % 2 or info.height % 2 else "yuv420p"


DEFAULT_PRESET = "veryfast"
"""x264's preset unless a job names one (``output.video_preset``). At CRF 18 on the 1080p benchmark clip
(72 frames, 2 threads): ``medium`` 171 core-ms per frame, 3.00 MB, PSNR 41.42 dB; ``faster`` 69 core-ms,
2.93 MB, 41.18 dB; ``veryfast`` 43 core-ms, 2.80 MB, 41.15 dB. On a GPU node the encoder is most of the
CPU a frame costs (README, Per-frame cost); ``medium`` buys about 0.3 dB for 4x its CPU.
"""


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

    def __init__(self, path: str, info: VideoInfo, *, crf: int = 18, preset: str = DEFAULT_PRESET,
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
        with open_container(seg, seg_name) as c:
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
    preset: str = DEFAULT_PRESET,
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
            template = stack.enter_context(open_container(segments[0], names[0])).streams.video[0]
            video_out = out.add_stream_from_template(template)
            source = _segment_packets
        video_out.time_base = tb
        audio = None
        if audio_source is not None:
            src = stack.enter_context(open_container(audio_source, name))
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
        with open_container(segment, name) as container:
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
