"""Work units are data: frozen tasks go to actors, frozen results come back.

A work unit is an :class:`ImageShard` (a few images), a :class:`FrameRange`
(consecutive frames of one video) or a :class:`HintTrack` (a video's keyframe hints
carried through its shots, before its ranges); all answer the small :class:`WorkUnit` interface
the scheduler and the metrics need. Ids derive from the inputs, so the same job always
cuts the same units and a rerun can skip the finished ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from colorstyle_core.video import VideoInfo
from jobs.metrics import ConsistencyFigures, FailureRow, FrameRow, QualityRow


class WorkUnit(Protocol):
    """What every work unit answers.

    Attributes:
        unit_id: stable id (derived from the inputs).
        kind: ``"image"`` or ``"video"`` (the metrics' ``kind`` column).
        frames: images or video frames the unit writes.
        input_uris: the inputs a failure of the whole unit is recorded against.
        video_key: the video a frame range belongs to (``None`` for image shards).
        after: the unit that must finish before this one starts, if any.
    """

    unit_id: str
    kind: ClassVar[str]

    @property
    def frames(self) -> int: ...

    @property
    def input_uris(self) -> tuple[str, ...]: ...

    @property
    def video_key(self) -> str | None: ...

    @property
    def after(self) -> str | None: ...


@dataclass(frozen=True)
class ImageItem:
    """One image of an image set.

    Attributes:
        uri: input URI.
        rel: path relative to its input root; the output mirrors it.
        output_uri: where the result goes.
        hints_uri: SIGGRAPH17 hint points file, if any.
        reference_uri: ground truth to compare the output with (``metrics.reference``).
        colorized_uri: where to keep the colorized result before stylization, if asked.
        diff_prefix: where to write this image's diff maps (with a reference).
    """

    uri: str
    rel: str
    output_uri: str
    hints_uri: str | None = None
    reference_uri: str | None = None
    colorized_uri: str | None = None
    diff_prefix: str | None = None


@dataclass(frozen=True)
class ImageShard:
    """A work unit of images."""

    unit_id: str
    items: tuple[ImageItem, ...]
    kind: ClassVar[str] = "image"

    @classmethod
    def of(cls, items: Sequence[ImageItem]) -> ImageShard:
        """The shard of ``items``, its id a digest of their input URIs (stable across runs)."""
        digest = hashlib.sha1("\n".join(i.uri for i in items).encode()).hexdigest()[:16]
        return cls(f"img-{digest}", tuple(items))

    def split(self) -> tuple[ImageShard, ...]:
        """One shard per image: to retry a failed shard so that one bad image cannot take the others with it."""
        return tuple(ImageShard.of([item]) for item in self.items)

    @property
    def frames(self) -> int:
        return len(self.items)

    @property
    def input_uris(self) -> tuple[str, ...]:
        return tuple(item.uri for item in self.items)

    @property
    def video_key(self) -> None:
        return None

    @property
    def after(self) -> None:
        return None


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
            :class:`HintTrack` of its video has carried them through every shot.
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
    kind: ClassVar[str] = "video"

    @property
    def frames(self) -> int:
        return self.stop - self.write_start

    @property
    def input_uris(self) -> tuple[str, ...]:
        return (self.video_uri,)

    @property
    def after(self) -> str | None:
        """The unit that must finish first (its video's :class:`HintTrack`), if any."""
        return self.hints.track_unit_id if self.hints else None


@dataclass(frozen=True)
class VideoHintsRef:
    """Where a video's keyframe hints are: the restorer's file and, once carried through
    the shots by its :class:`HintTrack`, the hints of every frame.

    Attributes:
        source_uri: the hints file (``{"keyframes": [...]}``).
        tracks_uri: the carried hints (Parquet: frame, y, x, a, b, weight, keyframe), in staging.
        track_unit_id: the :class:`HintTrack` that writes ``tracks_uri``.
    """

    source_uri: str
    tracks_uri: str
    track_unit_id: str


@dataclass(frozen=True)
class HintTrack:
    """A work unit that carries a video's keyframe hints through its shots (before its frame ranges).

    Done once per video, on an actor, over frames ``[start, stop)``: the keyframes' points
    follow the optical flow forward and backward to the next keyframe or scene cut
    (:func:`colorstyle_core.keyframes.propagate`), and every frame's hints are written to
    ``hints.tracks_uri``. Its video's ranges then just read their frames' hints, so a
    range knows the hints that reach it from a keyframe in an earlier range, and the
    hints are the same on both sides of every seam.

    Attributes:
        unit_id: stable id (``hints-<video key>``).
        video_key, video_uri: the video.
        info: the probed video.
        start, stop: the frames processed.
        hints: the hints file and where the carried hints go.
        cut_threshold: scene-cut score (the colour step's temporal setting, else the default).
    """

    unit_id: str
    video_key: str
    video_uri: str
    info: VideoInfo
    start: int
    stop: int
    hints: VideoHintsRef
    cut_threshold: float
    kind: ClassVar[str] = "hints"

    @property
    def frames(self) -> int:
        return 0  # writes no frames; its video's ranges do

    @property
    def input_uris(self) -> tuple[str, ...]:
        return (self.video_uri,)

    @property
    def after(self) -> None:
        return None


@dataclass(frozen=True)
class AssemblyTask:
    """Join a video's segments into its output."""

    video: VideoPlan
    segment_uris: tuple[str, ...]


@dataclass(frozen=True)
class ActorInfo:
    """Where an actor runs."""

    name: str
    node_id: str
    hostname: str
    gpu_ids: tuple[str, ...]
    device: str
    pid: int
    weights: str
    cuda_visible_devices: str | None = None  # as Ray set it for this actor

    @property
    def gpu_id(self) -> str:
        return ",".join(self.gpu_ids)


@dataclass(frozen=True)
class UnitResult:
    """What an actor returns for a unit (failures are values, not exceptions).

    Attributes:
        unit_id: the unit.
        frame_rows: one metrics row per written image/frame.
        failures: per-input problems inside the unit.
        actor: who did it.
        started_at, finished_at: wall clock, seconds since the epoch.
        quality: per-image comparison with ground truth.
        peak_rss_mb: the actor process's peak resident memory while it worked on the unit, MB.
    """

    unit_id: str
    frame_rows: tuple[FrameRow, ...]
    failures: tuple[FailureRow, ...]
    actor: ActorInfo
    started_at: float
    finished_at: float
    quality: tuple[QualityRow, ...] = ()
    peak_rss_mb: float | None = None


@dataclass(frozen=True)
class AssemblyResult:
    """What assembling a video produced (with its consistency figures when asked)."""

    video_key: str
    output_uri: str
    frames: int
    audio: str
    seconds: float
    consistency: ConsistencyFigures | None = None
