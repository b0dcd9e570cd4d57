"""A registry: the one list of the names of a pluggable concept (colorizers, stylization methods).

In the manner of timm's ``register_model`` and torchvision's weights enums, every list of
names, every ``--model`` choice and every manifest check reads a registry instead of
repeating the names: adding a colorizer or a stylization method is one new file and one
line that lists its entries (``colorstyle_core/colorizers/__init__.py``,
``colorstyle_core/style/methods/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    """What an entry has: its name (also the name users write in manifests and flags)."""

    @property
    def name(self) -> str: ...


EntryT = TypeVar("EntryT", bound=Named)


class Registry(Generic[EntryT]):
    """Entries of one concept by name, in the order they were given.

    Args:
        what: the concept, for messages (``"colorizer"``, ``"stylization method"``).
        entries: the entries; their names must be unique.
    Raises:
        ValueError: two entries with one name.
    """

    def __init__(self, what: str, entries: Iterable[EntryT]):
        self.what = what
        self._entries: dict[str, EntryT] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"two {what} entries are named {entry.name!r}")
            self._entries[entry.name] = entry

    @property
    def names(self) -> tuple[str, ...]:
        """Every name, in registration order (the ``choices`` of a flag, a manifest's ``Literal``)."""
        return tuple(self._entries)

    def get(self, name: str) -> EntryT:
        """The entry named ``name``.

        Raises:
            ValueError: an unknown name; the message lists the known ones.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; choose one of {', '.join(self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[EntryT]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
