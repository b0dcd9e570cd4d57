"""The stylization methods colorstyle knows: the one list of their names.

Each file holds one method's entry (:class:`~colorstyle_core.style.methods.entry.StyleMethod`):
its own settings, its weights, how it is built, how it stylizes a batch and keeps a film
steady. To add a method, write its file beside these and add its ``METHOD`` to the line
below; manifests, ``--method``, the driver's weight checks and the frame pipeline read
:data:`METHODS`.
"""

from __future__ import annotations

from colorstyle_core.registry import Registry
from colorstyle_core.style.methods import arbitrary, fast, gatys
from colorstyle_core.style.methods.entry import StyleMethod

METHODS: Registry[StyleMethod] = Registry("stylization method", (gatys.METHOD, fast.METHOD, arbitrary.METHOD))
"""Every stylization method by name, slowest and best first."""
