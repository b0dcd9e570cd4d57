"""Every weight set colorstyle knows, by name: the colorizers', the stylization methods' and VGG's.

The records themselves live with what uses them (a colorizer's in its entry file, a
stylization method's in its own, VGG's in :mod:`colorstyle_core.weights`); this module only
gathers them for what works on any of them by name: ``colorstyle weights list|fetch``,
``colorstyle models layout``, the generated weights of tests and smoke runs, and the training
code's weight checks.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.colorizers.entry import ColorizerEntry
from colorstyle_core.models import layout_of
from colorstyle_core.models.vgg import VGG
from colorstyle_core.style.methods import METHODS
from colorstyle_core.synthetic import Generation, Layout, generate, saved
from colorstyle_core.weights import VGG_SPECS, WeightSpec


def _specs() -> dict[str, WeightSpec]:
    specs = [spec for entry in COLORIZERS for spec in entry.weight_specs]
    specs += [spec for method in METHODS for spec in method.weight_specs]
    specs += list(VGG_SPECS)
    out: dict[str, WeightSpec] = {}
    for spec in specs:
        out.setdefault(spec.name, spec)  # Gatys lists the VGG records too
    return out


REGISTRY: dict[str, WeightSpec] = _specs()
"""Every weight record by name."""


def get_spec(name: str) -> WeightSpec:
    """The record for ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None


def build(name: str) -> nn.Module:
    """A freshly initialised network with the published checkpoint's architecture (VGG: features and classifier).

    Raises:
        ValueError: for an unknown name, or weights that are not a torch network (ONNX).
    """
    if any(name == spec.name for spec in VGG_SPECS):
        return VGG(name)
    for entry in (*COLORIZERS, *METHODS):
        if name in entry.networks:
            return entry.networks[name]()
    get_spec(name)  # unknown: the message lists the known ones
    raise ValueError(f"{name} is an ONNX model, not a torch network")


def layout(name: str) -> Layout:
    """``[(key, shape, dtype), ...]`` of ``build(name).state_dict()`` in state_dict order (built on the meta device)."""
    return layout_of(lambda: build(name))


def _generation(name: str) -> Generation:
    entry = COLORIZERS.get(name) if name in COLORIZERS else None
    return entry.generation if isinstance(entry, ColorizerEntry) else Generation()


def generated_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """Seeded UNTRAINED weights with the layout of the published ``name`` checkpoint
    (:func:`colorstyle_core.synthetic.generate` with the network's own :class:`~colorstyle_core.synthetic.Generation`).

    Raises:
        ValueError: for an unknown name.
    """
    return generate(layout(name), seed, _generation(name))


def save_generated(name: str, path: str, seed: int = 0) -> str:
    """Write :func:`generated_state_dict` to a local ``path`` with ``torch.save``.

    Returns:
        The file's full sha256 (hex), to pass as the expected hash when loading it.
    """
    data, digest = saved(generated_state_dict(name, seed))
    Path(path).write_bytes(data)
    return digest
