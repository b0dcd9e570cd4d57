"""The frame pipeline's data: its steps, the weights its models are built from, what one frame gives back.

A leaf of the library's imports: the pipeline (:mod:`colorstyle_core.pipeline`), the frame
sequence (:mod:`colorstyle_core.sequence`), the stylization methods and the jobs layer all
read these types, and this module reads none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from colorstyle_core import color
from colorstyle_core.provenance import Provenance
from colorstyle_core.style.gatys import StyleConfig
from colorstyle_core.temporal import StepInfo, TemporalSettings
from colorstyle_core.timing import Seconds, zero

LARGE_IMAGE_PIXELS = 16_000_000
"""Stills with more pixels than this go through :meth:`~colorstyle_core.pipeline.FramePipeline.process_large`:
processed in bands of rows and returned as 8-bit, so memory grows by a few bytes per pixel instead of a hundred."""

BAND_PIXELS = 1_000_000
"""Pixels per band for large stills (about 60 MB of float temporaries in the colour maths)."""

DEFAULT_MAX_PIXELS = 200_000_000
"""Default limit on a still's pixels (``execution.max_pixels``, ``--max-pixels``): larger images are
refused from their header. Measured peak memory of one actor or command is given in the README."""


@dataclass(frozen=True)
class ColorizeStep:
    """The colorization step.

    Attributes:
        model: a colorizer's name (:data:`colorstyle_core.colorizers.COLORIZERS`).
        gamut: ``preserve-l`` (output L = input L) or ``clip`` (the authors' demo).
        temporal: flow-guided colour stabilisation for video, or ``None`` (per frame).
        hint_adherence: how strictly the output keeps hinted colours, 0 (the network's
            answer) .. 1 (a hint's ab exactly at the hint; :class:`~colorstyle_core.hints.HintPull`).
        hint_radius: pixels over which a hint's pull fades into the prediction.
        reference: a colorizer that takes one (``deepexemplar``): the colour photo whose colours every input takes
            (:mod:`colorstyle_core.exemplar`).
        image_size: ``deepexemplar``: the authors' ``image_size`` ``(height, width)``, the network working
            at half of it (``None``: theirs, 432 x 768).
    """

    model: str = "eccv16"
    gamut: color.GamutMode = "preserve-l"
    temporal: TemporalSettings | None = None
    hint_adherence: float = 1.0
    hint_radius: float = 24.0
    reference: str | None = None
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class StylizeStep:
    """The stylization step.

    Attributes:
        styles: URIs of the style images (also the key their Gram targets are cached under).
        config: the Gatys et al. settings (``fast`` and ``arbitrary`` use only its
            ``preserve_color`` and, for ``arbitrary``, ``style_blend``).
        arch, pooling: the VGG network (``gatys``).
        size: processing size, longer side in pixels (0 = the input's size; never enlarged
            unless ``keep_input_size`` is False).
        keep_input_size: restore each output to its input's size (jobs); False = the output
            has the processing size, enlarging small inputs too (``colorstyle stylize --size``).
        temporal: along a shot for video, or ``None`` (each method's own way, see its entry
            in :data:`colorstyle_core.style.methods.METHODS`).
        method: a stylization method's name (:data:`colorstyle_core.style.methods.METHODS`).
    """

    styles: tuple[str, ...]
    config: StyleConfig = StyleConfig()
    arch: str = "vgg19"
    pooling: str = "max"
    size: int = 512
    keep_input_size: bool = True
    temporal: TemporalSettings | None = None
    method: str = "gatys"


@dataclass(frozen=True)
class PipelineConfig:
    """Which steps run (colorize, then stylize; at least one)."""

    colorize: ColorizeStep | None = None
    stylize: StylizeStep | None = None

    @property
    def temporal(self) -> bool:
        """Whether some step has temporal settings (video frames go through temporal chains; so do those of a
        recurrent colorizer: :attr:`colorstyle_core.pipeline.FramePipeline.temporal`)."""
        return any(step is not None and step.temporal is not None for step in (self.colorize, self.stylize))


@dataclass(frozen=True)
class ModelWeights:
    """Verified tensors of one network and where they came from.

    Arrays are numpy so they travel zero-copy through Ray's object store (read-only there:
    :meth:`state_dict` copies). Networks that are files rather than tensors (ONNX) are
    held as ``{file name: (bytes,) uint8}``; :meth:`file` returns one.
    """

    name: str
    arrays: Mapping[str, np.ndarray]
    provenance: Provenance

    @classmethod
    def from_state_dict(cls, name: str, state_dict: Mapping[str, Tensor], provenance: Provenance) -> ModelWeights:
        return cls(name, {k: v.detach().contiguous().numpy() for k, v in state_dict.items()}, provenance)

    def state_dict(self) -> dict[str, Tensor]:
        return {k: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()}

    @classmethod
    def from_files(cls, name: str, files: Mapping[str, bytes], provenance: Provenance) -> ModelWeights:
        return cls(name, {k: np.frombuffer(v, np.uint8) for k, v in files.items()}, provenance)

    def file(self, key: str) -> bytes:
        return self.arrays[key].tobytes()


@dataclass
class FrameResult:
    """One processed frame.

    Attributes:
        image: ``(1, 3, H, W)`` float32 sRGB in ``[0, 1]`` at the input's size (or the
            processing size, see :class:`StylizeStep`), on the pipeline's device; for
            :meth:`~colorstyle_core.pipeline.FramePipeline.process_large`, uint8 on the CPU (a view of an
            ``(H, W, 3)`` buffer).
        colorized: the colorized frame before stylization (both steps on, stills only).
        curves: stylization loss per optimiser step: ``{"total" | "content" | "style" | "tv": [...]}``.
        stages: seconds this frame spent per stage (its share of batch work).
        info: what the temporal chain did (video with temporal consistency).
        perframe_diff: mean absolute RGB difference (in [0, 1]) to the per-frame colorization,
            over every 4th pixel in each direction (temporal colour only;
            :data:`~colorstyle_core.sequence.PERFRAME_DIFF_STRIDE`).
    """

    image: Tensor
    colorized: Tensor | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)

    stages: Seconds = field(default_factory=zero)
    info: StepInfo | None = None
    perframe_diff: float | None = None
