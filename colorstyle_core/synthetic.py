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
saturating tanh. The VGG classifier (dropped by the feature extractor) is a zero
tensor expanded to its shape: right layout, a few bytes on disk.
"""

from __future__ import annotations

import hashlib
import io
import math

import torch
from torch import Tensor

from colorstyle_core.models import layout

UNTRAINED_TAG = "UNTRAINED"
"""Marker written into every output, metrics row and log line made with generated weights."""

UNTRAINED_NOTE = "weights are UNTRAINED (generated for smoke tests): output is not a real colorization/stylization"


_OUTPUT_SCALE = {
    ("eccv16", "model8.6.weight"): 50.0,  # 313 ab-bin logits: peaked like a trained network's
    ("siggraph17", "model_out.0.weight"): 1.0,  # regression head before tanh
}


def generated_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """Seeded weights with the layout of the published ``name`` checkpoint.

    Args:
        name: ``eccv16``, ``siggraph17``, ``vgg16`` or ``vgg19``.
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
    return out


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
