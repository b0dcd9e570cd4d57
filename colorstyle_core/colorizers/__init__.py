"""The colorizers colorstyle knows: the one list of their names.

Each file holds one family's entries (each a :class:`~colorstyle_core.colorizers.entry.ColorizerKind`):
its networks' builders, weight records, what it takes (hints, a reference photo), whether a
film is one chain, its own settings and how its weights are verified (the runtime that builds
it in each actor: :data:`colorstyle_core.pipeline.RUNTIMES`). One network of one
published weight set is a :class:`~colorstyle_core.colorizers.entry.ColorizerEntry` with its
own pre/post-processing (Zhang et al., DDColor); another shape has its own entry class
(``deepexemplar``: three networks, a reference, a recurrence). To add a colorizer, write its
file beside these and add its ``ENTRIES`` to the line below; every manifest check, ``--model``
choice, weights listing, the driver's weight checks and the frame pipeline read :data:`COLORIZERS`.
"""

from __future__ import annotations

from colorstyle_core.colorizers import ddcolor, deepexemplar, zhang
from colorstyle_core.colorizers.entry import ColorizerKind
from colorstyle_core.registry import Registry

COLORIZERS: Registry[ColorizerKind] = Registry("colorizer", (*zhang.ENTRIES, *ddcolor.ENTRIES, *deepexemplar.ENTRIES))
"""Every colorizer by name, in the order ``--model`` lists them."""
