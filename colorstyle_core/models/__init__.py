"""Network architectures, each written to load its published checkpoint unchanged (``strict=True``).

Which architecture a name means is its entry's business (a colorizer's in
``colorstyle_core/colorizers/``, a stylization method's in ``colorstyle_core/style/methods/``);
:mod:`colorstyle_core.catalog` builds any of them by name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from colorstyle_core.models.ddcolor import DDColor
from colorstyle_core.models.eccv16 import ECCV16Colorizer
from colorstyle_core.models.johnson import TransformerNet
from colorstyle_core.models.siggraph17 import SIGGRAPH17Colorizer
from colorstyle_core.models.vgg import VGG, VGGFeatures, layer_names, vgg_features_only

Layout = list[tuple[str, list[int], str]]


def layout_of(build: Callable[[], nn.Module]) -> Layout:
    """``[(key, shape, dtype), ...]`` of ``build().state_dict()`` in state_dict order.

    dtype is the torch dtype name without the ``torch.`` prefix (``"float32"``, ``"int64"``).
    Built on the ``meta`` device, so no memory is allocated for the weights.
    """
    with torch.device("meta"):
        model = build()
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


__all__ = [
    "DDColor",
    "ECCV16Colorizer",
    "Layout",
    "SIGGRAPH17Colorizer",
    "TransformerNet",
    "VGG",
    "VGGFeatures",
    "layer_names",
    "layout_of",
    "vgg_features_only",
]
