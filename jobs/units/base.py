"""What every work unit shares: the interface the scheduler and the metrics read, where it ran, what
comes back, and what an actor knows about the job.

A work unit is data: a frozen task goes to an actor, a frozen result comes back (rows,
failures as values, timings). Each kind lives in its own module with its handler (the code
an actor runs for it): :mod:`jobs.units.images` (a shard of stills), :mod:`jobs.units.frame_ranges`
(consecutive frames of one video), :mod:`jobs.units.hint_tracks` (a video's keyframe hints
carried through its shots) and :mod:`jobs.units.assembly` (a video's ranges joined). Ids derive
from the inputs, so the same job always cuts the same units and a rerun can skip the finished ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from colorstyle_core import imageio
from colorstyle_core.hints import HintsError
from colorstyle_core.pipeline_types import PipelineConfig
from colorstyle_core.video import VideoError
from jobs.metrics.tables import FailureRow, FrameRow, QualityRow

PERMANENT_ERRORS = (VideoError, imageio.ImageDecodeError, HintsError)
"""Errors caused by the input itself: retrying cannot help."""


class WorkUnit(Protocol):
    """What every work unit answers.

    Attributes:
        unit_id: stable id (derived from the inputs).
        kind: ``"image"``, ``"video"`` or ``"hints"`` (the metrics' ``kind`` column).
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


class UnitHandler(Protocol):
    """The code an actor runs for one kind of unit (built once per actor, with its
    :class:`~jobs.units.context.UnitContext`)."""

    def process(self, unit: Any, attempt: int, submitted_at: float, give_up: Callable[[], None]) -> UnitResult:
        """Process ``unit`` (attempt ``attempt``, submitted at ``submitted_at``, seconds since the epoch).

        ``give_up()`` hands the actor's turn at the models to its next unit before this one ends (a frame range
        whose encoder flushes); the turn is handed on at the end anyway.
        """
        ...


@dataclass(frozen=True)
class WorkerSpec:
    """Everything an actor needs to know about the job (frozen, shipped once).

    Attributes:
        job_id, run_id: the job and this run.
        pipeline: the frame pipeline's steps.
        untrained_seed: generated UNTRAINED weights with this seed (smoke runs), else ``None``.
        storage_options, output_storage_options: fsspec options for inputs and outputs.
        batch_size: frames per network batch.
        video_crf, video_preset: H.264 quality and x264 speed of the outputs.
        video_encoder: ``auto``, ``libx264`` or ``h264_nvenc`` (:func:`colorstyle_core.encoders.h264_encoder`).
        device: ``auto``, ``cpu``, ``cuda``, ...
        cpu_threads: the actor's CPU share (torch and encoder threads).
        measure_consistency: measure E_warp of every assembled video.
        reencode_videos: stage frame ranges losslessly and encode each video once at assembly.
        max_pixels: stills with more pixels are refused from their header, before decoding.
        precision: ``fp32``, ``bf16`` or ``fp16`` for the networks on CUDA (:func:`colorstyle_core.devices.autocast`).
        overlap_io: decode the next batch and encode the previous one on their own threads while the
            network runs (``False``: one after the other; ``"auto"``: on CUDA actors only).
        compile_colour: compile the per-pixel colour maths (``execution.compile_colour``).
    """

    job_id: str
    run_id: str
    pipeline: PipelineConfig
    untrained_seed: int | None
    storage_options: dict | None
    output_storage_options: dict | None
    batch_size: int
    video_crf: int
    video_preset: str
    video_encoder: str = "auto"
    device: str = "auto"
    cpu_threads: int = 1
    measure_consistency: bool = False
    reencode_videos: bool = False
    max_pixels: int | None = None
    precision: str = "fp32"
    overlap_io: bool | str = "auto"
    compile_colour: bool = False


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
