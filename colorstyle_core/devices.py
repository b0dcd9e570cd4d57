"""Device selection and numeric precision: the one place that decides CPU or CUDA, fp32 or mixed."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

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


class EagerOnly:
    """A function ``torch.compile`` must not trace (its shapes depend on the data): always run eagerly, also when a
    compiled function calls it (``torch.compiler.disable``, applied once something is compiled, so that importing
    the library does not load the compiler: a second and 150 MB less per actor process)."""

    def __init__(self, fn: Callable[..., Tensor]):
        functools.update_wrapper(self, fn)
        self.fn = self._call = fn
        _EAGER_ONLY.append(self)

    def __call__(self, *args: object, **kwargs: object) -> Tensor:
        return self._call(*args, **kwargs)

    def _disable_tracing(self) -> None:
        if self._call is self.fn:
            self._call = torch.compiler.disable(self.fn)


_EAGER_ONLY: list[EagerOnly] = []


def eager_only(fn: Callable[..., Tensor]) -> EagerOnly:
    """Decorator: :class:`EagerOnly`."""
    return EagerOnly(fn)


def compiled(fn: Callable[..., Tensor], enabled: bool = True, *, dynamic: bool = False) -> Callable[..., Tensor]:
    """``fn`` through ``torch.compile`` (Inductor: its elementwise passes fused into a few loops), or ``fn``.

    For the per-pixel colour maths of video frames (``execution.compile_colour``): one compile per
    frame size (a second size compiles a shape-generic version), 10-30 s on a CPU, cached on
    disk by Inductor for the next process; the compiled passes give eager's float32 values to
    rounding (largest difference 4e-6 on 1080p frames in [0, 1]) 3-5x faster on a CPU. Data-dependent parts
    (:func:`eager_only`) stay eager. If compiling fails (no C++ compiler, an unsupported
    backend), the call is answered eagerly, the failure is logged once and ``fn`` runs eagerly from
    then on; an error that eager raises too (bad inputs) propagates and leaves compilation on.

    Args:
        fn: a function of tensors.
        enabled: ``False`` returns ``fn`` itself.
        dynamic: compile one shape-generic version at once (inputs whose size changes every call,
            such as the out-of-gamut pixels of each batch).
    """
    if not enabled:
        return fn
    for helper in _EAGER_ONLY:
        helper._disable_tracing()
    fast = torch.compile(fn, dynamic=True) if dynamic else torch.compile(fn)
    failed = False

    def call(*args: object) -> Tensor:
        nonlocal failed
        if failed:
            return fn(*args)
        try:
            return fast(*args)
        except Exception as e:  # noqa: BLE001 - a compiler failure, or the inputs' own error: eager tells
            result = fn(*args)  # an error of the inputs raises here too, and compilation stays on
            failed = True
            log.warning("torch.compile of %s failed, running it eagerly from now on: %s",
                        getattr(fn, "__name__", fn),
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return result

    return call
