"""The threads inside one actor: decoding ahead of the network, encoding behind it, and the turn at the models.

A frame range's frames are decoded a batch ahead on one thread (:func:`decoded_batches`; PyAV
releases the GIL while it decodes) and encoded behind the network on another
(:class:`EncodeBehind`), both bounded, so decode, network and encode overlap
(``execution.overlap_io``). The actor is created with ``max_concurrency=2``
(:func:`jobs.scheduler.start_pool`), so two of its calls can run at once; :class:`ComputeTurn`
lets only one of them use the models at a time.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


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


def decoded_batches(decode_batch: Callable[[], tuple[list[T], float]], decoder: Overlap, ahead: bool
                    ) -> Iterator[tuple[list[T], float]]:
    """Batches from ``decode_batch()`` (``(batch, seconds it took)``; an empty batch ends them), each next one
    decoded on ``decoder``'s thread while the caller works on this one.

    Args:
        decode_batch: decodes the next batch.
        decoder: the decoding thread.
        ahead: decode the next batch while the caller works; ``False`` decodes it first (one thing at a time,
            for comparisons): at most two batches are ever decoded ahead.
    """
    pending = decoder.submit(decode_batch)
    while True:
        batch, seconds = pending.result()
        if not batch:
            return
        pending = decoder.submit(decode_batch)  # overlaps with the caller's work on this batch
        if not ahead:
            pending.result()  # serial: decode finishes before the network starts
        yield batch, seconds


class EncodeBehind(Generic[T]):
    """Items written in order on the encoder's thread while the network works on the next ones.

    At most ``ahead`` items wait (memory bound). After a failed write no later item is written:
    the first failure is the unit's error (raised by :meth:`submit` or :meth:`finish`).

    Args:
        encoder: the encoding thread.
        write: writes one item (on the encoder's thread).
        ahead: items that may wait for the encoder (0: each is written before :meth:`submit` returns).
    """

    def __init__(self, encoder: Overlap, write: Callable[[T], None], ahead: int):
        self.encoder, self.write, self.ahead = encoder, write, ahead
        self._in_flight: deque[Future] = deque()
        self._broken: list[BaseException] = []  # after a failed write the segment is lost: write no more

    def _encode(self, item: T) -> None:
        if self._broken:
            raise self._broken[0]
        try:
            self.write(item)
        except BaseException as e:
            self._broken.append(e)
            raise

    def submit(self, item: T) -> None:
        """Queue ``item``; waits while more than ``ahead`` are queued."""
        self._in_flight.append(self.encoder.submit(self._encode, item))
        while len(self._in_flight) > self.ahead:  # bounded memory
            self._in_flight.popleft().result()

    def finish(self) -> None:
        """Wait until every queued item is written (raises the first failed write's error)."""
        while self._in_flight:
            self._in_flight.popleft().result()
