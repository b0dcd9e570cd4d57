"""``fast``: a transformation network trained for one style (Johnson, Alahi, Fei-Fei, ECCV 2016;
:class:`~colorstyle_core.style.feedforward.FastStylizer`), trained by ``colorstyle train`` (``kind: stylizer``).

One network pass per frame, for films. Its style is the one it was trained on (its ``.json``
sidecar names it), so it takes no style images; nothing is published, so ``model`` is required.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from colorstyle_core import loader
from colorstyle_core.devices import Precision
from colorstyle_core.loader import WeightsSource
from colorstyle_core.models.johnson import TransformerNet
from colorstyle_core.pipeline_types import ModelWeights, StylizeStep
from colorstyle_core.provenance import Provenance
from colorstyle_core.style.feedforward import FAST_STYLIZER, FastStylizer
from colorstyle_core.style.methods.entry import FeedForwardChain, Losses, StyleMethod
from colorstyle_core.temporal import TemporalSettings


class _FastOp:
    def __init__(self, stylizer: FastStylizer, step: StylizeStep, device: torch.device):
        self.stylizer, self.step, self.device = stylizer, step, device

    def __call__(self, content: Tensor) -> tuple[Tensor, Losses]:
        return self.stylizer(content, self.step.config.preserve_color).to(self.device), {}

    def chain(self, settings: TemporalSettings) -> FeedForwardChain:
        return FeedForwardChain(self, settings)


class Fast(StyleMethod):
    name = "fast"
    options = ("model",)
    takes_styles = False
    feed_forward = True
    needs_model = True
    temporal = "each frame blended with the previous output carried along the motion (weight strength)"
    weight_specs = (FAST_STYLIZER,)
    networks = {FAST_STYLIZER.name: TransformerNet}

    def weights(self, step: StylizeStep, source: WeightsSource, untrained: bool) -> ModelWeights | None:
        if untrained:
            return None
        state_dict, resolved = loader.load_verified_state_dict(FAST_STYLIZER, source)
        return ModelWeights.from_state_dict(FAST_STYLIZER.name, state_dict,
                                            Provenance.from_resolved(FAST_STYLIZER.name, resolved))

    def build(self, step: StylizeStep, weights: ModelWeights | None, *, untrained_seed: int | None = None,
              device: str | torch.device | None = None, precision: Precision = "fp32",
              threads: int = 0) -> FastStylizer:
        if untrained_seed is not None:
            stylizer = FastStylizer.from_weights(WeightsSource(), device=device, untrained_seed=untrained_seed)
        elif weights is None:
            raise ValueError("no weights for the fast stylizer (pipeline.stylize.model)")
        else:
            stylizer = FastStylizer.from_state_dict(weights.state_dict(), weights.provenance, device=device)
        stylizer.precision = precision
        return stylizer

    def accepts(self, model: object) -> bool:
        return isinstance(model, FastStylizer)

    def bind(self, model: Any, styles: Sequence[Tensor], step: StylizeStep, device: torch.device) -> _FastOp:
        return _FastOp(model, step, device)

    def checkpoint_name(self, step: StylizeStep) -> str:
        return FAST_STYLIZER.name

    def describe(self, step: StylizeStep, where: str | None) -> str:
        return f"fast network {where}"


METHOD = Fast()
