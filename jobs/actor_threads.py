"""The threads inside one actor: the decode/encode helper threads and the turn at the models.

Used by :class:`jobs.worker.UnitProcessor`. The actor is created with ``max_concurrency=2``
(:func:`jobs.scheduler.start_pool`), so two of its calls can run at once; :class:`ComputeTurn`
lets only one of them use the models at a time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor


class Overlap(ThreadPoolExecutor):
    """One background thread (decode, or encode) whose queued work is cancelled when the block fails."""

    def __init__(self, name: str):
        super().__init__(1, thread_name_prefix=name)

    def __exit__(self, exc_type, exc, tb):
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return False


class ComputeTurn:
    """Whose turn it is to use the models, on an actor that runs two units at once (``max_concurrency=2``).

    A frame range with the decode/encode threads (``overlap_io``) gives up its turn once its last
    frame is through the pipeline, so its encoder's flush (x264 holds back its last 40 or so frames
    until then: with ``medium`` and 48-frame ranges, most of the range's encoding) and the segment's
    upload run while the next unit's frames go through the network. Every other unit keeps the turn
    to its end, so without the overlap an actor works one unit at a time, as before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self) -> Iterator[Callable[[], None]]:
        """Wait for the turn; yields ``give_up()``, which hands it on early (the block's end does otherwise)."""
        self._lock.acquire()
        held = True

        def give_up() -> None:
            nonlocal held
            if held:
                held = False
                self._lock.release()

        try:
            yield give_up
        finally:
            give_up()
