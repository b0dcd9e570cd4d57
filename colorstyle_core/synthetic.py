"""Generated, untrained weights in the published checkpoint layouts.

For tests and for smoke runs that are asked for explicitly (``--untrained-weights``):
no pretrained weights can be downloaded on CI machines, so these stand in for them
with exactly the keys, shapes and dtypes of the published files. They are seeded and
deterministic for a given torch version. Anything produced with them is not a
colorization or a stylization and must say so (:data:`UNTRAINED_TAG`).

Scheme: convolutions He-normal (``std = sqrt(2 / fan_in)``), biases ``N(0, 0.01)``,
BatchNorm as freshly initialised (identity), ConvNeXt layer scales 0.1 (trained ones hold
values of this order). The VGG classifier (dropped by the feature extractor) is a zero
tensor expanded to its shape: right layout, a few bytes on disk. What makes one network's
generated weights behave like its trained ones where tests look (peaked ECCV16 logits and
its ab-bin centres, DDColor's spectral vectors, output scales) is its :class:`Generation`,
held by the network's entry (``colorstyle_core/colorizers/``); :func:`colorstyle_core.catalog.generated_state_dict`
finds it by name.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from colorstyle_core.models import Layout

UNTRAINED_TAG = "UNTRAINED"
"""Marker written into every output, metrics row and log line made with generated weights."""

UNTRAINED_NOTE = "weights are UNTRAINED (generated for smoke tests): output is not a real colorization/stylization"

_LAYER_SCALE = 0.1
"""ConvNeXt blocks' layer scale in generated weights (trained ones hold values of this order)."""

@dataclass(frozen=True)
class Generation:
    """What one network's generated weights need beyond the scheme (see the module).

    Attributes:
        output_scale: ``{key: factor}``: weights scaled so outputs have a trained network's magnitude.
        special: ``{key: make(shape, generator)}``: tensors made another way (ECCV16's ab-bin centres).
        finish: ``finish(state_dict, generator)`` after every key is made, in place (buffers, DDColor's
            spectral vectors).
    """

    output_scale: Mapping[str, float] = field(default_factory=dict)
    special: Mapping[str, Callable[[tuple[int, ...], torch.Generator], Tensor]] = field(default_factory=dict)
    finish: Callable[[dict[str, Tensor], torch.Generator], None] | None = None


def generate(layout: Layout, seed: int = 0, generation: Generation = Generation()) -> dict[str, Tensor]:
    """Seeded weights with ``layout``.

    Args:
        layout: the published checkpoint's keys, shapes and dtypes, in state_dict order.
        seed: RNG seed; same seed and torch version -> identical tensors.
        generation: the network's own adjustments.
    Returns:
        ``{key: tensor}`` in state_dict order, float32 (``num_batches_tracked`` int64).
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for key, shape, dtype in layout:
        make = generation.special.get(key)
        out[key] = make(tuple(shape), gen) if make is not None else \
            _tensor_for(key, tuple(shape), dtype, gen, generation.output_scale.get(key, 1.0))
    if generation.finish is not None:
        generation.finish(out, gen)
    return out


def spectral_vectors(weight: Tensor, gen: torch.Generator, iterations: int = 30) -> tuple[Tensor, Tensor]:
    """The ``(u, v)`` a trained spectral-normalised layer stores: leading singular vectors of ``weight``.

    Power iteration on ``W = weight.reshape(out, -1)`` from a seeded random ``u``:
    ``v = normalize(W^T u)``, ``u = normalize(W v)`` (Miyato et al. 2018, Algorithm 1), so that
    ``u . W v`` is W's largest singular value. Random u and v that do not belong to W make that
    product an arbitrary small number and the layer's output explode.

    Returns:
        ``u`` ``(out,)`` and ``v`` ``(in * kh * kw,)``, float32, unit length.
    """
    w = weight.reshape(weight.shape[0], -1).double()
    u = torch.nn.functional.normalize(torch.randn(w.shape[0], generator=gen, dtype=torch.float64), dim=0)
    v = torch.nn.functional.normalize(w.t() @ u, dim=0)
    for _ in range(iterations):
        v = torch.nn.functional.normalize(w.t() @ u, dim=0)
        u = torch.nn.functional.normalize(w @ v, dim=0)
    return u.float(), v.float()


def _tensor_for(key: str, shape: tuple[int, ...], dtype: str, gen: torch.Generator, scale: float) -> Tensor:
    if dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    if key.startswith("classifier."):
        return torch.zeros(()).expand(shape)
    if key.endswith("running_mean"):
        return torch.zeros(shape)
    if key.endswith("running_var"):
        return torch.ones(shape)
    is_norm = len(shape) == 1 and ".weight" in key
    if is_norm:
        return torch.ones(shape)
    if key.endswith(".gamma"):  # ConvNeXt layer scale
        return torch.full(shape, _LAYER_SCALE)
    if key.endswith("bias"):
        return torch.randn(shape, generator=gen) * 0.01
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in) * scale


def saved(state_dict: Mapping[str, Tensor]) -> tuple[bytes, str]:
    """``torch.save`` of ``state_dict``: ``(the file's bytes, their full sha256 in hex)``."""
    buf = io.BytesIO()
    torch.save(dict(state_dict), buf)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()
