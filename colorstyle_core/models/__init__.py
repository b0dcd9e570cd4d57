"""Network architectures, built by name.

``build(name)`` returns the architecture exactly as its published checkpoint was
saved (for VGG: features and classifier), so ``layout(name)`` is the key-by-key
layout of that checkpoint.
"""

from __future__ import annotations

from torch import nn

from colorstyle_core.models.ddcolor import DDColor
from colorstyle_core.models.eccv16 import ECCV16Colorizer
from colorstyle_core.models.johnson import TransformerNet
from colorstyle_core.models.siggraph17 import SIGGRAPH17Colorizer
from colorstyle_core.models.vgg import VGG, VGGFeatures, layer_names, vgg_features_only
from colorstyle_core.weights import DDColorContract, LabContract, get_spec

Layout = list[tuple[str, list[int], str]]


def build(name: str) -> nn.Module:
    """A freshly initialised network with the published checkpoint's architecture.

    Raises:
        ValueError: for an unknown name, or weights that are not a torch network (ONNX).
    """
    spec = get_spec(name)
    if spec.kind == "fast-stylizer":
        return TransformerNet()
    if spec.kind == "arbitrary-style":
        raise ValueError(f"{name} is an ONNX model, not a torch network")
    if name == "eccv16":
        assert isinstance(spec.preprocess, LabContract)
        return ECCV16Colorizer(spec.preprocess)
    if name == "siggraph17":
        assert isinstance(spec.preprocess, LabContract)
        return SIGGRAPH17Colorizer(spec.preprocess)
    if isinstance(spec.preprocess, DDColorContract):
        return DDColor(spec.preprocess.size, spec.preprocess)
    return VGG(name)


def layout(name: str) -> Layout:
    """``[(key, shape, dtype), ...]`` of ``build(name).state_dict()`` in state_dict order.

    dtype is the torch dtype name without the ``torch.`` prefix (``"float32"``, ``"int64"``).
    Built on the ``meta`` device, so no memory is allocated for the weights.
    """
    import torch

    with torch.device("meta"):
        model = build(name)
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


__all__ = [
    "DDColor",
    "ECCV16Colorizer",
    "SIGGRAPH17Colorizer",
    "TransformerNet",
    "VGG",
    "VGGFeatures",
    "build",
    "layer_names",
    "layout",
    "vgg_features_only",
]
