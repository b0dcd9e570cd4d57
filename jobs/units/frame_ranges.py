"""Frame ranges: consecutive frames of one video per work unit, and what an actor does with one.

A range decodes ``[read_start, stop)`` (of a video file or an image sequence), runs the frames
through the pipeline's sequence (temporal chains warmed up on the frames before ``write_start``,
handing over to the next range from ``handoff_start``), encodes ``[write_start, stop)`` into a
staged segment and uploads it; the video's :class:`~jobs.units.assembly.AssemblyTask` joins the
segments. An image sequence kept as frames writes each frame's file instead (:class:`FrameFiles`).
Decoding ahead and encoding behind the network run on their own threads
(:mod:`jobs.actor_threads`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import av
import numpy as np

from colorstyle_core import imageio, storage
from colorstyle_core.hints import ColorHints, reference_at
from colorstyle_core.imageio import frames_rgb8
from colorstyle_core.segments import SegmentWriter
from colorstyle_core.sequences import input_frames
from colorstyle_core.timing import Stage, StageTimer, added, scaled
from colorstyle_core.video import VideoError, VideoInfo
from jobs.actor_threads import EncodeBehind, Overlap, decoded_batches
from jobs.units.base import UnitResult
from jobs.units.context import UnitContext, Written
from jobs.units.hint_tracks import VideoHintsRef, range_cuts, range_hints

log = logging.getLogger(__name__)

ENCODE_AHEAD = 2
"""Batches of processed frames that may wait for the encoder (memory bound of the overlap)."""


@dataclass(frozen=True)
class VideoPlan:
    """One video input and how it is cut.

    Attributes:
        key: short stable id of the video (from its URI).
        uri, rel, output_uri: input, relative path, output (``.mp4``, or ``.gif`` for GIFs).
        info: the probed video (all timestamps).
        start, stop: selected frames ``[start, stop)``.
        unit_ids: the frame-range units, in frame order.
        staging_prefix: where range segments wait for assembly.
        seams: first frame of every range after the first (where two units meet).
        hints_uri: the video's keyframe hints file (SIGGRAPH17), or ``None``.
        as_frames: an image sequence kept as frames: ``output_uri`` is the folder its ranges write them to.
    """

    key: str
    uri: str
    rel: str
    output_uri: str
    info: VideoInfo
    start: int
    stop: int
    unit_ids: tuple[str, ...]
    staging_prefix: str
    seams: tuple[int, ...] = ()
    hints_uri: str | None = None
    as_frames: bool = False

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class FrameRange:
    """A work unit of consecutive video frames.

    Frames ``[read_start, stop)`` are decoded and processed; only ``[write_start, stop)``
    are written (``write_start > read_start`` when the unit warms up temporal state on
    frames owned by the previous range).

    Attributes:
        unit_id: stable id.
        video_key, video_uri: the video.
        read_start, write_start, stop: frame indices.
        info: the video's info, windowed to this range's timestamps.
        segment_uri: where the encoded segment goes (staging).
        handoff_start: with temporal consistency, where the next range starts warming up:
            from there this range also runs the chain the next one will run and fades its
            written frames into it (``None``: last range, or no temporal consistency).
        hints: the video's keyframe hints, when it has some: the range starts after the
            :class:`~jobs.units.hint_tracks.HintTrack` of its video has carried them through every shot.
        references: ``deepexemplar``: ``(frame, URI)`` of its hints file's reference keyframes, in frame order;
            a frame takes the last one at or before it unless a scene cut comes between (then, and before the
            first, the job's reference): the cuts come from the video's track (``hints``).
        frames_to: an image sequence kept as frames (``output.sequence_as: frames``): the output folder, where
            each written frame goes under its input file's name (no segment, no assembly join).
    """

    unit_id: str
    video_key: str
    video_uri: str
    read_start: int
    write_start: int
    stop: int
    info: VideoInfo
    segment_uri: str
    handoff_start: int | None = None
    hints: VideoHintsRef | None = None
    references: tuple[tuple[int, str], ...] = ()
    frames_to: str | None = None
    kind: ClassVar[str] = "video"

    def output_of(self, index: int) -> str:
        """Where frame ``index`` is written: its file under ``frames_to``, else the range's segment."""
        if self.frames_to is None:
            return self.segment_uri
        return storage.join_under(self.frames_to, storage.basename(self.info.frame_uri(index)))

    @property
    def frames(self) -> int:
        return self.stop - self.write_start

    @property
    def input_uris(self) -> tuple[str, ...]:
        return (self.video_uri,)

    @property
    def after(self) -> str | None:
        """The unit that must finish first (its video's hint track), if any."""
        return self.hints.track_unit_id if self.hints else None


class FrameFiles:
    """Writes an image sequence's processed frames as files, each under its input's name and format (8-bit), each
    written atomically (a rerun of the range writes the same files again).

    The same interface as :class:`~colorstyle_core.segments.SegmentWriter`: ``write(rgb, index)`` in a ``with``.
    """

    def __init__(self, unit: FrameRange, description: str, storage_options: dict | None):
        self.unit, self.description, self.storage_options = unit, description, storage_options

    def __enter__(self) -> FrameFiles:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, rgb: np.ndarray, index: int) -> None:
        """Encode ``(H, W, 3)`` uint8 frame ``index`` for its file's suffix and write it.

        Raises:
            storage.StorageError, OSError: the write failed (the driver retries the range).
        """
        uri = self.unit.output_of(index)
        storage.write_bytes_atomic(uri, imageio.encode_image(rgb, uri, self.description), self.storage_options)


def _take(it: Iterator, n: int) -> list:
    out = []
    for item in it:
        out.append(item)
        if len(out) == n:
            break
    return out


class FrameRanges:
    """The handler of frame ranges on one actor."""

    def __init__(self, ctx: UnitContext):
        self.ctx = ctx

    def process(self, unit: FrameRange, attempt: int, submitted_at: float,
                give_up: Callable[[], None] = lambda: None) -> UnitResult:
        """Decode a frame range, process it, encode it into a staged segment, upload it.

        ``give_up`` hands the actor's compute turn to the next unit once the last frame is through
        the pipeline (with ``overlap_io``), before the encoder's flush and the upload.

        Raises:
            VideoError: the range cannot be decoded, or produced the wrong number of frames.
            storage.StorageError, OSError: transient storage problems (the driver retries).
        """
        ctx = self.ctx
        started = time.time()
        queue_wait = max(0.0, started - submitted_at)
        written: list[Written] = []
        timer = ctx.timer()
        batch_size = ctx.spec.batch_size
        with tempfile.TemporaryDirectory(prefix="colorstyle-") as tmp:
            local_segment = os.path.join(tmp, "segment.mkv")
            opened = time.perf_counter()
            # decode, network and encode overlap: the executors sit inside the source and the writer, so
            # they have stopped (queued work cancelled on an error) before either is closed
            with input_frames(unit.video_uri, unit.info, unit.read_start, unit.stop,
                              ctx.spec.storage_options) as frames, Overlap("decode") as decoder:
                read_s = time.perf_counter() - opened
                with self.writer(local_segment, unit) as writer, Overlap("encode") as encoder:

                    def encode(frame: Written) -> None:  # on the encoder's thread, frames in order
                        start = time.perf_counter()
                        writer.write(imageio.to_uint8_hwc(frame.result.image), frame.index)
                        frame.stages = added(frame.stages, {Stage.ENCODE: time.perf_counter() - start})

                    behind = EncodeBehind(encoder, encode, ENCODE_AHEAD * batch_size if ctx.overlap else 0)
                    for frame in self._processed(frames, unit, timer, decoder):
                        if frame.index < unit.write_start:
                            continue  # warm-up frame: its output belongs to the previous range
                        behind.submit(frame)
                        written.append(frame)
                        if len(written) % batch_size == 0:
                            ctx.report(len(written))
                    behind.finish()  # raises the encoder's error, if any
                    encode_flush = time.perf_counter()
                    if ctx.overlap:
                        give_up()  # the next unit's network runs during this segment's flush and upload
            write_start = time.perf_counter()
            if unit.frames_to is None:
                storage.copy_file_atomic(local_segment, unit.segment_uri, ctx.spec.output_storage_options)
            write_s = time.perf_counter() - write_start
        if len(written) != unit.frames:
            raise VideoError(f"{unit.video_uri}: range {unit.unit_id} produced {len(written)} frames, "
                             f"expected {unit.frames}")
        # opening the source, the segment's final flush and its upload: shared by its frames
        shared = scaled({Stage.READ: read_s, Stage.ENCODE: write_start - encode_flush, Stage.WRITE: write_s},
                        1.0 / max(1, len(written)))
        rows = tuple(ctx.frame_row(unit, unit.video_uri, unit.output_of(f.index),
                                   dataclasses.replace(f, stages=added(f.stages, shared)), queue_wait, started)
                     for f in written)
        return UnitResult(unit.unit_id, rows, (), ctx.actor, started, time.time())

    def _processed(self, frames: Iterator, unit: FrameRange, timer: StageTimer, decoder: Overlap
                   ) -> Iterator[Written]:
        """Decoded frames, a batch at a time, through the pipeline's sequence for this range."""
        ctx = self.ctx
        sequence = ctx.pipeline.sequence(unit.handoff_start, unit.stop)
        carried = unit.hints is not None and not unit.references  # keyframe hints carried through the shots
        with timer(Stage.READ):
            hints: dict[int, ColorHints] = range_hints(unit, ctx) if carried else {}
            cuts = range_cuts(unit, ctx) if unit.hints and unit.references else ()
        batch_size = ctx.spec.batch_size

        def decode_batch() -> tuple[list[tuple[int, np.ndarray]], float]:
            start = time.perf_counter()
            batch = _take(frames, batch_size)
            return batch, time.perf_counter() - start

        for batch, decode_s in decoded_batches(decode_batch, decoder, ahead=ctx.overlap):
            decode = {Stage.DECODE: decode_s / len(batch)}
            frame_hints = [hints.get(i) for i, _ in batch] if hints else None
            references = [ctx.exemplar_reference(reference_at(unit.references, i, cuts)) for i, _ in batch] \
                if unit.references else None
            results = sequence.process([i for i, _ in batch], frames_rgb8([rgb for _, rgb in batch]), frame_hints,
                                       references)
            for (index, _), result in zip(batch, results):
                count = len(hints[index].points) if index in hints else (0 if carried else None)
                yield Written(index, result, added(decode, result.stages), len(batch), count)

    def writer(self, path: str, unit: FrameRange) -> SegmentWriter | FrameFiles:
        """Where the range's frames go: its segment at ``path`` (staged for assembly), or its files (an image
        sequence kept as frames)."""
        if unit.frames_to is not None:
            return FrameFiles(unit, self.ctx.description, self.ctx.spec.output_storage_options)
        return self.segment_writer(path, unit)

    def segment_writer(self, path: str, unit: FrameRange) -> SegmentWriter:
        """The range's encoder: this actor's H.264 encoder, x264 when NVENC refuses a session (a GPU's
        concurrent-session limit; the assembly re-encodes a video whose ranges differ)."""
        ctx = self.ctx
        options = {"crf": ctx.spec.video_crf, "preset": ctx.spec.video_preset, "threads": ctx.spec.cpu_threads,
                   "metadata": {"comment": ctx.description}, "intermediate": ctx.spec.reencode_videos}
        if ctx.encoder != "libx264" and not ctx.spec.reencode_videos:
            try:
                return SegmentWriter(path, unit.info, encoder=ctx.encoder, **options)
            except (av.error.FFmpegError, OSError) as e:
                log.warning("%s: %s did not open (%s): this range is encoded with libx264", unit.video_uri,
                            ctx.encoder, e)
        return SegmentWriter(path, unit.info, **options)
