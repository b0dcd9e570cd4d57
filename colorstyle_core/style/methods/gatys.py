"""``gatys``: image optimisation on VGG features (Gatys, Ecker, Bethge, CVPR 2016; :mod:`colorstyle_core.style.gatys`).

The best stills, minutes each. Frames of one size are optimised as one batch (each gets the
result it would get alone); films along a shot start each frame from the previous stylized
frame warped onto it, with a masked temporal loss to it (Ruder et al. 2016,
:class:`~colorstyle_core.temporal.StyleChain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from colorstyle_core import loader
from colorstyle_core.devices import Precision
from colorstyle_core.loader import WeightsSource
from colorstyle_core.models.vgg import VGG, vgg_features_only
from colorstyle_core.pipeline_types import ModelWeights, StylizeStep
from colorstyle_core.provenance import Provenance
from colorstyle_core.style.gatys import Stylizer
from colorstyle_core.style.methods.entry import Losses, StyleMethod
from colorstyle_core.temporal import StepInfo, StyleChain, TemporalSettings
from colorstyle_core.timing import Stage, StageTimer
from colorstyle_core.weights import VGG16, VGG19, vgg_spec


class _GatysOp:
    """Gatys bound to the style images: Gram targets per content size (cached under the style URIs)."""

    def __init__(self, stylizer: Stylizer, styles: Sequence[Tensor], step: StylizeStep):
        self.stylizer, self.styles, self.step = stylizer, list(styles), step

    def targets(self, content: Tensor):
        return self.stylizer.targets(self.styles, self.step.config, content, key=self.step.styles)

    def __call__(self, content: Tensor) -> tuple[Tensor, Losses]:
        result = self.stylizer(content, self.targets(content), self.step.config)
        return result.images, result.losses

    def chain(self, settings: TemporalSettings) -> _GatysChain:
        return _GatysChain(self, settings)


class _GatysChain:
    """:class:`~colorstyle_core.temporal.StyleChain` along one shot, made with the targets of the shot's frame size."""

    def __init__(self, op: _GatysOp, settings: TemporalSettings):
        self.op, self.settings = op, settings
        self.chain: StyleChain | None = None

    def step(self, content: Tensor, timer: StageTimer) -> tuple[Tensor, Losses, StepInfo]:
        if self.chain is None:
            self.chain = StyleChain(self.op.stylizer, self.op.targets(content), self.op.step.config, self.settings)
        with timer(Stage.STYLIZE):
            image, result, info = self.chain.step(content)
        timer.seconds[Stage.STYLIZE] -= info.seconds  # flow and masks are temporal work
        timer.seconds[Stage.TEMPORAL] += info.seconds
        return image, result.losses, info


class Gatys(StyleMethod):
    name = "gatys"
    options = ("arch", "weights", "steps", "optimizer", "lr", "content_weight", "style_weight", "tv_weight", "init",
               "seed", "content_layers", "style_layers", "style_scale", "pooling")
    weights_key = "weights"
    losses = True
    temporal = "each frame warm-started from the previous one carried along the motion, with a temporal loss"
    weight_specs = (VGG16, VGG19)
    networks = {"vgg16": lambda: VGG("vgg16"), "vgg19": lambda: VGG("vgg19")}

    def weights(self, step: StylizeStep, source: WeightsSource, untrained: bool) -> ModelWeights | None:
        if untrained:
            return None
        state_dict, resolved = loader.load_verified_state_dict(vgg_spec(step.arch), source,
                                                               key_filter=vgg_features_only)
        return ModelWeights.from_state_dict(step.arch, state_dict, Provenance.from_resolved(step.arch, resolved))

    def build(self, step: StylizeStep, weights: ModelWeights | None, *, untrained_seed: int | None = None,
              device: str | torch.device | None = None, precision: Precision = "fp32", threads: int = 0) -> Stylizer:
        if untrained_seed is not None:
            stylizer = Stylizer.from_weights(step.arch, device=device, pooling=step.pooling,  # type: ignore[arg-type]
                                             untrained_seed=untrained_seed)
        elif weights is None:
            raise ValueError(f"no weights for the stylizer {step.arch}")
        else:
            stylizer = Stylizer.from_state_dict(step.arch, weights.state_dict(), weights.provenance, device=device,
                                                pooling=step.pooling)  # type: ignore[arg-type]
        stylizer.extractor.precision = precision
        return stylizer

    def accepts(self, model: object) -> bool:
        return isinstance(model, Stylizer)

    def bind(self, model: Any, styles: Sequence[Tensor], step: StylizeStep, device: torch.device) -> _GatysOp:
        return _GatysOp(model, styles, step)

    def checkpoint_name(self, step: StylizeStep) -> str:
        return step.arch

    def describe(self, step: StylizeStep, where: str | None) -> str:
        spec = vgg_spec(step.arch)
        return (f"{step.arch} weights {spec.filename} sha256 {spec.sha256}... from "
                f"{where or f'the cache, else {spec.url}'}")


METHOD = Gatys()
