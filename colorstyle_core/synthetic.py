"""Generated, untrained weights in the published checkpoint layouts.

For tests and for smoke runs that are asked for explicitly (``--untrained-weights``):
no pretrained weights can be downloaded on CI machines, so these stand in for them
with exactly the keys, shapes and dtypes of the published files. They are seeded and
deterministic for a given torch version. Anything produced with them is not a
colorization or a stylization and must say so (:data:`UNTRAINED_TAG`).

Scheme: convolutions He-normal (``std = sqrt(2 / fan_in)``), biases ``N(0, 0.01)``,
BatchNorm as freshly initialised (identity). The output layers are scaled so the
generated colorizers behave like the trained ones where tests look: ECCV16's ab-bin
layer holds random bin centres inside the ab disk of radius 80 and its logits are
sharpened (x50) so the 313-way distribution is peaked, giving colours of realistic
magnitude (mean |ab| about 15) that flicker from frame to frame as per-frame
colorization does; SIGGRAPH17's regression head gives mean |ab| about 20 without
saturating tanh. DDColor: the ImageNet ``mean``/``std`` buffers as published, ConvNeXt layer
scales 0.1, each spectral-normalised convolution's ``weight_u``/``weight_v`` the leading singular
pair of its ``weight_orig`` (power iteration; random ones make the output explode), and the
colour-embedding head scaled (x60) so ab has a trained network's magnitude (mean |ab| about 15
for DDColor-T). The VGG classifier (dropped by the feature extractor) is a zero
tensor expanded to its shape: right layout, a few bytes on disk.
"""

from __future__ import annotations

import hashlib
import io
import math

import torch
from torch import Tensor

from colorstyle_core.models import layout
from colorstyle_core.weights import DDColorContract, get_spec

UNTRAINED_TAG = "UNTRAINED"
"""Marker written into every output, metrics row and log line made with generated weights."""

UNTRAINED_NOTE = "weights are UNTRAINED (generated for smoke tests): output is not a real colorization/stylization"


_OUTPUT_SCALE = {
    ("eccv16", "model8.6.weight"): 50.0,  # 313 ab-bin logits: peaked like a trained network's
    ("siggraph17", "model_out.0.weight"): 1.0,  # regression head before tanh
    **{(n, "decoder.color_decoder.color_embed.layers.2.weight"): 60.0  # colour maps -> ab of trained magnitude
       for n in ("ddcolor_paper_tiny", "ddcolor_paper", "ddcolor_modelscope", "ddcolor_artistic")},
}


_LAYER_SCALE = 0.1
"""ConvNeXt blocks' layer scale in generated DDColor weights (trained ones hold values of this order)."""


def generated_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """Seeded weights with the layout of the published ``name`` checkpoint.

    Args:
        name: a registry name with a torch network (``eccv16``, ``siggraph17``, ``ddcolor_*``,
            ``vgg16``, ``vgg19``, ``fast-stylizer``).
        seed: RNG seed; same seed and torch version -> identical tensors.
    Returns:
        ``{key: tensor}`` in state_dict order, float32 (``num_batches_tracked`` int64).
    Raises:
        ValueError: for an unknown name.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for key, shape, dtype in layout(name):
        out[key] = _tensor_for(name, key, tuple(shape), dtype, gen)
    contract = get_spec(name).preprocess
    if isinstance(contract, DDColorContract):
        out["mean"] = torch.tensor(contract.mean).view(1, 3, 1, 1)
        out["std"] = torch.tensor(contract.std).view(1, 3, 1, 1)
        for key in [k for k in out if k.endswith(".weight_orig")]:
            stem = key.removesuffix("_orig")
            out[stem + "_u"], out[stem + "_v"] = spectral_vectors(out[key], gen)
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


def _tensor_for(name: str, key: str, shape: tuple[int, ...], dtype: str, gen: torch.Generator) -> Tensor:
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
    if name == "eccv16" and key == "model_out.weight":  # (2, 313, 1, 1): ab bin centres / 110
        radius = 80.0 * torch.rand(shape[1], generator=gen).sqrt()
        angle = 2 * math.pi * torch.rand(shape[1], generator=gen)
        centres = torch.stack((radius * angle.cos(), radius * angle.sin())) / 110.0
        return centres.view(shape)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in) * _OUTPUT_SCALE.get((name, key), 1.0)


def save_generated(name: str, path: str, seed: int = 0) -> str:
    """Write :func:`generated_state_dict` to a local ``path`` with ``torch.save``.

    Returns:
        The file's full sha256 (hex), to pass as the expected hash when loading it.
    """
    buf = io.BytesIO()
    torch.save(generated_state_dict(name, seed), buf)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()
