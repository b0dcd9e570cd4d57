"""The colorizers colorstyle knows: the one list of their names.

Each file holds one family's entries (:class:`~colorstyle_core.colorizers.entry.ColorizerEntry`):
its networks' builders, weight records and pre/post-processing. To add a colorizer, write
its file beside these and add its ``ENTRIES`` to the line below; every manifest check,
``--model`` choice, weights listing and generated-weights recipe reads :data:`COLORIZERS`.
"""

from __future__ import annotations

from colorstyle_core.colorizers import ddcolor, zhang
from colorstyle_core.colorizers.entry import ColorizerEntry
from colorstyle_core.registry import Registry

COLORIZERS: Registry[ColorizerEntry] = Registry("colorizer", (*zhang.ENTRIES, *ddcolor.ENTRIES))
"""Every colorizer by name, in the order ``--model`` lists them."""
