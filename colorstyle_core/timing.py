"""Stage timing: the one stage enum and the one timer, shared by the frame pipeline and the job metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum


class Stage(StrEnum):
    """The stages a frame goes through; the job metrics have a ``<stage>_s`` column for each."""

    READ = "read"
    DECODE = "decode"
    PREPROCESS = "preprocess"
    COLORIZE = "colorize"
    STYLIZE = "stylize"
    TEMPORAL = "temporal"  # optical flow, consistency masks and warping (temporal consistency)
    ENCODE = "encode"
    WRITE = "write"
    EVALUATE = "evaluate"  # comparison with ground truth (metrics.reference)


Seconds = dict[Stage, float]
"""Wall-clock seconds per stage."""


def zero() -> Seconds:
    """Every stage at 0 s."""
    return {s: 0.0 for s in Stage}


def added(*parts: Mapping[Stage, float]) -> Seconds:
    """The stage-wise sum of several ``{stage: seconds}`` maps (missing stages count 0)."""
    out = zero()
    for part in parts:
        for stage, seconds in part.items():
            out[stage] += seconds
    return out


def scaled(seconds: Mapping[Stage, float], factor: float) -> Seconds:
    """``seconds`` times ``factor`` per stage (e.g. a batch's time shared by its frames)."""
    return {s: seconds.get(s, 0.0) * factor for s in Stage}


class StageTimer:
    """Accumulates wall-clock seconds per :class:`Stage`.

    ``with timer(Stage.COLORIZE): ...``. On a GPU pass ``sync=torch.cuda.synchronize``
    so asynchronous kernels are charged to the stage that launched them.
    """

    def __init__(self, sync: Callable[[], None] | None = None):
        self.seconds: Seconds = zero()
        self._sync = sync

    @contextmanager
    def __call__(self, stage: Stage) -> Iterator[None]:
        if self._sync:
            self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                self._sync()
            self.seconds[stage] += time.perf_counter() - start

    def take(self) -> Seconds:
        """The seconds so far, resetting the timer."""
        out, self.seconds = self.seconds, zero()
        return out
