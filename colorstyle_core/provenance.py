"""Which weights produced an output, carried into file metadata, metrics rows and logs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from colorstyle_core.loader import ResolvedWeights
from colorstyle_core.synthetic import UNTRAINED_TAG


@dataclass(frozen=True)
class Provenance:
    """Which weights produced an output: written into output metadata and metrics.

    Attributes:
        name: weight set name (``eccv16``, ``vgg19``, ...).
        sha256: hex digest of the loaded file, or :data:`UNTRAINED_TAG` for generated weights.
        origin: where the file came from.
    """

    name: str
    sha256: str
    origin: str

    @property
    def untrained(self) -> bool:
        return self.sha256 == UNTRAINED_TAG

    @classmethod
    def from_resolved(cls, name: str, resolved: ResolvedWeights) -> Provenance:
        return cls(name, resolved.sha256, resolved.origin)

    @classmethod
    def generated(cls, name: str, seed: int) -> Provenance:
        return cls(name, UNTRAINED_TAG, f"generated(seed={seed})")

    def describe(self) -> str:
        if self.untrained:
            return f"{self.name} weights={UNTRAINED_TAG} ({self.origin})"
        return f"{self.name} weights=sha256:{self.sha256[:16]} ({self.origin})"


class UntrainedLogFilter(logging.Filter):
    """Prefixes every log record with the UNTRAINED marker (runs with generated weights).

    Install with :func:`mark_untrained_logs`; every handler's output then says so.
    """

    PREFIX = f"[{UNTRAINED_TAG} weights] "

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.PREFIX):
            record.msg = self.PREFIX + str(record.msg)
        return True


def mark_untrained_logs() -> UntrainedLogFilter:
    """Attach :class:`UntrainedLogFilter` to every handler of the root logger (idempotent).

    Returns:
        The filter, for ``unmark_untrained_logs``.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    marker = next((f for h in root.handlers for f in h.filters if isinstance(f, UntrainedLogFilter)), None)
    marker = marker or UntrainedLogFilter()
    for handler in root.handlers:
        if marker not in handler.filters:
            handler.addFilter(marker)
    return marker


def unmark_untrained_logs(marker: UntrainedLogFilter) -> None:
    for handler in logging.getLogger().handlers:
        handler.removeFilter(marker)
