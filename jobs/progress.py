"""Progress of a running job: a bar that moves per frame batch in a terminal, a line at a fixed interval in logs.

Actors report how many frames of their current unit are done after every batch to a
tiny :class:`JobBoard` actor; the scheduler polls it every half second (:class:`BoardReader`) and adds
those in-flight frames to the frames of finished units. Where the output is not a
terminal (``colorstyle submit``, cluster logs, files) a line is printed every
``interval_s`` seconds: done/total frames and units, frames/s, ETA and failures so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import ray
from ray.exceptions import RayError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class JobBoard:
    """A Ray actor (zero CPUs, never restarted) shared by the driver and the pool for one run.

    * It holds the object references of the verified weights, which the pool's actors
      fetch with :meth:`weights` when they start (finding the board by its name), and again
      when Ray restarts them. So neither the weights nor a handle are constructor arguments
      of a restartable actor (for which Ray warns that a restart could fail once such
      arguments leave the object store), and the references live as long as the board:
      the whole run.
    * It holds the frames done so far of every unit attempt in flight: workers call
      :meth:`report` (fire and forget) after each batch but a unit's last (the unit's result
      counts those); the driver reads :meth:`snapshot` a few times a second, telling it which
      attempts have ended since. Keys are ``"<unit id>#<attempt>"`` so a retried unit starts from 0.

    Args:
        weights: ``{"colorizer": ref, "stylizer": ref}`` (``None`` for a step that is off).
    """

    def __init__(self, weights: dict | None = None) -> None:
        self._weights = dict(weights or {})
        self._done: dict[str, int] = {}

    def weights(self, step: str):
        """The object reference of a step's verified weights (``None`` when the step is off)."""
        return self._weights.get(step)

    def report(self, key: str, frames: int) -> None:
        self._done[key] = frames

    def snapshot(self, ended: list[str] | None = None) -> dict[str, int]:
        """Forget the ``ended`` attempts, then the frames done of every attempt still reported."""
        for key in ended or ():
            self._done.pop(key, None)
        return dict(self._done)


PROGRESS_POLL_S = 0.5
"""Seconds between two reads of the live progress board (one call, whatever the number of units in flight)."""

log = logging.getLogger(__name__)


class BoardReader:
    """The scheduler's side of the :class:`JobBoard` actor: one snapshot call in flight at a time, asked for at most
    every ``poll_s`` seconds and never waited on; the attempts that ended since the last call go with the next one
    (the board forgets them), so a run of a million units keeps the board as small as the units in flight.

    Args:
        board: the board's actor handle (``None``: no live progress; :meth:`poll` returns ``None``).
        poll_s: seconds between two snapshots.
    """

    def __init__(self, board, poll_s: float = PROGRESS_POLL_S):
        self.board, self.poll_s = board, poll_s
        self._snapshot: ray.ObjectRef | None = None
        self._asked_at = 0.0
        self._ended: list[str] = []

    def ended(self, key: str) -> None:
        """The attempt ``key`` (:func:`progress_key`) is over: the next snapshot call has the board forget it."""
        if self.board is not None:
            self._ended.append(key)

    def poll(self) -> dict[str, int] | None:
        """The snapshot asked for last time, if it has come (``{}`` if the call failed; live progress is a
        nicety), else ``None``; asks for the next one when ``poll_s`` has passed."""
        if self.board is None:
            return None
        live = None
        if self._snapshot is not None and ray.wait([self._snapshot], timeout=0)[0]:
            try:
                live = ray.get(self._snapshot)
            except RayError as e:
                log.debug("progress snapshot failed: %s", e)
                live = {}
            self._snapshot = None
        if self._snapshot is None and time.monotonic() - self._asked_at >= self.poll_s:
            self._snapshot, self._ended = self.board.snapshot.remote(self._ended), []
            self._asked_at = time.monotonic()
        return live


def progress_key(unit_id: str, attempt: int) -> str:
    """The :class:`JobBoard` key of one attempt of a unit."""
    return f"{unit_id}#{attempt}"


def duration(seconds: float) -> str:
    """``"1 h 02 min"``, ``"3 min 05 s"``, ``"42 s"``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class ProgressReporter:
    """What the user sees while a job runs.

    Args:
        console: the rich console (``is_terminal`` decides bar or lines).
        total_frames, total_units: the run's work.
        bar: show a bar when the console is a terminal.
        interval_s: seconds between log lines when it is not (0 = none).
        label: the bar's description.
        printer: what prints the lines (default the console; the driver's says UNTRAINED where it applies).
        clock: for tests.
    """

    def __init__(self, console: Console, total_frames: int, total_units: int, *, bar: bool = True,
                 interval_s: float = 30.0, label: str = "frames", printer: Callable[..., None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.printer = printer or console.print
        self.total_frames, self.total_units = total_frames, total_units
        self.finished_frames = self.finished_units = self.failures = 0
        self.live: dict[str, int] = {}
        self.interval_s = interval_s
        self.clock = clock
        self.start = self.last_line = clock()
        terminal = getattr(console, "is_terminal", False)
        self.progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=console, transient=False,
                                 disable=not (bar and terminal))
        self.lines = interval_s > 0 and not (bar and terminal)
        self.task = self.progress.add_task(label, total=total_frames, rate="")
        self.listing = False

    def planned(self, frames: int, units: int = 1) -> None:
        """More work found while the inputs are still being listed."""
        self.total_frames += frames
        self.total_units += units
        self.progress.update(self.task, total=self.total_frames)

    def listed(self, listing: bool) -> None:
        """Whether the inputs are still being listed (the totals still grow; no ETA yet)."""
        self.listing = listing

    def __enter__(self) -> ProgressReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    @property
    def done(self) -> int:
        """Frames finished or abandoned, plus those of units in flight."""
        return min(self.total_frames, self.finished_frames + sum(self.live.values()))

    def finished(self, frames: int, units: int = 1, failures: int = 0) -> None:
        """Units finished (or given up): their frames, and failures recorded."""
        self.finished_frames += frames
        self.finished_units += units
        self.failures += failures
        self._show()

    def in_flight(self, frames_by_unit: dict[str, int]) -> None:
        """The frames done so far of the units in flight (from the :class:`JobBoard`)."""
        self.live = frames_by_unit
        self._show()

    def rate(self) -> float:
        elapsed = self.clock() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """One progress line: done/total frames and units, frames/s, ETA, failures."""
        done, rate = self.done, self.rate()
        pct = 100.0 * done / self.total_frames if self.total_frames else 100.0
        eta = duration((self.total_frames - done) / rate) if rate > 0 and done < self.total_frames else "-"
        so_far = " (listing inputs: totals so far)" if self.listing else ""
        return (f"progress: {done}/{self.total_frames} frames ({pct:.1f}%), {self.finished_units}/{self.total_units}"
                f" units{so_far}, {rate:.2f} frames/s, elapsed {duration(self.clock() - self.start)}, "
                f"ETA {'-' if self.listing else eta}, failures {self.failures}")

    def _show(self) -> None:
        self.progress.update(self.task, completed=self.done, rate=f"{self.rate():.2f} fr/s")
        now = self.clock()
        if self.lines and now - self.last_line >= self.interval_s:
            self.last_line = now
            self.printer(self.line(), highlight=False)

    def tick(self) -> None:
        """Called about once a second by the scheduler: prints the interval line when it is due."""
        self._show()
