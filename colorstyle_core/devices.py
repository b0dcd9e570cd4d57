"""Device selection and numeric precision: the one place that decides CPU or CUDA, fp32 or mixed."""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import torch

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""``execution.precision``: the autocast dtype of the networks' forward passes (``None`` = float32)."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> the first CUDA device if there is one, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast(device: torch.device, precision: Precision = "fp32") -> contextlib.AbstractContextManager:
    """Mixed precision for a network's forward pass: ``torch.autocast`` on CUDA, nothing otherwise.

    Only the networks run under it (convolutions, matrix products); the Lab maths, the Gram
    matrices and the losses stay float32 (callers cast the network's output back). On a CPU
    the precision is ignored: fp16 has no fast CPU kernels and bf16 is slower than fp32 on
    CPUs without AMX, so CPU runs stay fp32.

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def tune_for(device: torch.device) -> None:
    """Process-wide settings that help on ``device``: cuDNN autotuning for fixed frame sizes on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
