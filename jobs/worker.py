"""What an actor does with a work unit: route it to its kind's handler, with the actor's models.

A :class:`UnitProcessor` is built once per actor (models loaded once, :class:`~jobs.units.context.UnitContext`)
and then processes units; each kind's handler lives with the kind's data in :mod:`jobs.units`.
It has no Ray dependency, so it also runs in plain tests and in the benchmark's in-process actor path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from colorstyle_core.pipeline_types import ModelWeights
from jobs.progress import progress_key
from jobs.units.base import ActorInfo, UnitHandler, UnitResult, WorkerSpec, WorkUnit
from jobs.units.context import UnitContext
from jobs.units.frame_ranges import FrameRange, FrameRanges
from jobs.units.hint_tracks import HintTrack, HintTracks
from jobs.units.images import ImageShard, ImageShards


def reset_peak_rss() -> None:
    """Restart this process's peak-RSS counter (Linux ``clear_refs``; a no-op where unsupported)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's peak resident memory since :func:`reset_peak_rss` (or its start), MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class UnitProcessor:
    """One actor's models and its unit handlers.

    Args:
        spec: the job's worker settings.
        colorizer_weights, stylizer_weights: verified weights (``None`` for a step that
            is off, or when ``spec.untrained_seed`` asks for generated weights).
        actor: where this processor runs (for metrics rows).
    Raises:
        FileNotFoundError, imageio.ImageDecodeError: a style image cannot be read.
    """

    def __init__(self, spec: WorkerSpec, colorizer_weights: ModelWeights | None,
                 stylizer_weights: ModelWeights | None, actor: ActorInfo):
        self.ctx = UnitContext.build(spec, colorizer_weights, stylizer_weights, actor)
        self.handlers: dict[type, UnitHandler] = {ImageShard: ImageShards(self.ctx), FrameRange: FrameRanges(self.ctx),
                                                  HintTrack: HintTracks(self.ctx)}

    @property
    def pipeline(self):
        return self.ctx.pipeline

    @property
    def untrained(self) -> bool:
        return self.ctx.untrained

    @property
    def on_progress(self) -> Callable[[str, int], None] | None:
        return self.ctx.on_progress

    @on_progress.setter
    def on_progress(self, report: Callable[[str, int], None] | None) -> None:
        self.ctx.on_progress = report

    def process(self, unit: WorkUnit, attempt: int, submitted_at: float) -> UnitResult:
        """Process one work unit with its kind's handler; per-input problems come back as failure rows.

        Raises:
            VideoError: a frame range cannot be decoded (permanent: the video is bad).
            storage.StorageError, OSError: transient storage problems (the driver retries).
        """
        handler = self.handlers.get(type(unit))
        if handler is None:
            raise TypeError(f"no handler for a {type(unit).__name__}")
        with self.ctx.turn.hold() as give_up:
            reset_peak_rss()
            self.ctx.progress_key, self.ctx.progress_total = progress_key(unit.unit_id, attempt), unit.frames
            result = handler.process(unit, attempt, submitted_at, give_up)
        return dataclasses.replace(result, peak_rss_mb=peak_rss_mb())
