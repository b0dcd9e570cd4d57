"""What a stylization method is to colorstyle: one :class:`StyleMethod` per method.

A method says which manifest settings are its own, whether it takes style images, where its
weights come from and how they are verified (in the driver, once), how its model is built
from them (in each actor, once), and, bound to a job's style images and settings, how it
stylizes a batch (:class:`StyleOp`) and how it keeps a film steady along a shot
(:class:`ShotChain`). The frame pipeline runs any method the same way; nothing outside a
method's file knows which method it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from colorstyle_core import color
from colorstyle_core.devices import Precision
from colorstyle_core.loader import WeightsSource
from colorstyle_core.pipeline_types import ModelWeights, StylizeStep
from colorstyle_core.temporal import ABStabilizer, StepInfo, TemporalSettings
from colorstyle_core.timing import Stage, StageTimer
from colorstyle_core.weights import WeightSpec

Losses = dict[str, Tensor]
"""Loss curves of a batch: ``{"total" | "content" | "style" | "tv": (steps, N) float32}`` (empty for
methods without an optimisation)."""


class ShotChain(Protocol):
    """A method's temporal state along one shot: frames go through :meth:`step` in order."""

    def step(self, content: Tensor, timer: StageTimer) -> tuple[Tensor, Losses, StepInfo]:
        """Stylize the shot's next frame.

        Args:
            content: ``(1, 3, h, w)`` float32 sRGB in ``[0, 1]`` at the processing size.
            timer: where the frame's seconds go (``stylize``, and ``temporal`` for flow and blending).
        Returns:
            ``(image, losses, info)``: the ``(1, 3, h, w)`` stylized frame, its loss curves and what
            the chain did (a restart at a scene cut, the flow's trusted share).
        """
        ...


class StyleOp(Protocol):
    """A loaded method bound to a job's style images and settings."""

    def __call__(self, content: Tensor) -> tuple[Tensor, Losses]:
        """Stylize a batch: ``(N, 3, h, w)`` float32 sRGB in ``[0, 1]`` at the processing size -> the same shape
        on the pipeline's device, and the loss curves."""
        ...

    def chain(self, settings: TemporalSettings) -> ShotChain:
        """A new chain for one shot of a film (``temporal`` on)."""
        ...


class FeedForwardChain:
    """A feed-forward method along a shot: each frame's stylization blended with the previous output carried
    along the motion (:class:`~colorstyle_core.temporal.ABStabilizer`, weight ``strength``), as the colour
    chain does with ab. A network pass per frame cannot be warm-started as Gatys' optimisation is."""

    def __init__(self, op: Callable[[Tensor], tuple[Tensor, Losses]], settings: TemporalSettings):
        self.op = op
        self.stabilizer = ABStabilizer(settings)

    def step(self, content: Tensor, timer: StageTimer) -> tuple[Tensor, Losses, StepInfo]:
        with timer(Stage.STYLIZE):
            image, losses = self.op(content)
        with timer(Stage.TEMPORAL):
            image, info = self.stabilizer.step(color.rgb_to_l(content), image)
        return image, losses, info


class StyleMethod(ABC):
    """One stylization method (a registry entry: :data:`colorstyle_core.style.methods.METHODS`).

    Attributes:
        name: the method's name in manifests (``pipeline.stylize.method``) and ``--method``.
        options: the ``pipeline.stylize`` settings only this method reads (another method's are refused).
        weights_key: the ``pipeline.stylize`` setting that says where its weights are (``weights`` or ``model``).
        takes_styles: it stylizes with the job's style images (``False``: its network holds its style).
        feed_forward: one network pass per frame (for films), rather than an optimisation per frame (minutes).
        needs_model: ``weights_key`` must be given (nothing is published to fall back on).
        losses: it reports per-step loss curves (``--losses-out``).
        temporal: how it keeps a film steady along a shot (for the README and ``--help``).
        weight_specs: the weight records it reads (``colorstyle weights list``).
        networks: ``{weights name: builder}`` of its torch networks (``colorstyle models layout``, generated weights).
    """

    name: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    weights_key: ClassVar[str] = "model"
    takes_styles: ClassVar[bool] = True
    feed_forward: ClassVar[bool] = False
    needs_model: ClassVar[bool] = False
    losses: ClassVar[bool] = False
    temporal: ClassVar[str] = ""
    weight_specs: ClassVar[tuple[WeightSpec, ...]] = ()
    networks: ClassVar[Mapping[str, Callable[[], nn.Module]]] = {}

    @abstractmethod
    def weights(self, step: StylizeStep, source: WeightsSource, untrained: bool) -> ModelWeights | None:
        """Resolve and verify the method's weights (the driver does this once, before any work).

        Args:
            step: the stylize step.
            source: where ``weights_key`` says the weights are (URI, sha256, storage options).
            untrained: a smoke run with generated weights (``None`` is returned where they are generated).
        Raises:
            colorstyle_core.loader.WeightsError: missing, corrupt or of the wrong layout.
        """

    @abstractmethod
    def build(self, step: StylizeStep, weights: ModelWeights | None, *, untrained_seed: int | None = None,
              device: str | torch.device | None = None, precision: Precision = "fp32", threads: int = 0) -> Any:
        """The loaded model (in each actor, once) from verified weights, or generated ones with ``untrained_seed``.

        Raises:
            ValueError: no weights and no ``untrained_seed``.
            colorstyle_core.loader.WeightsLayoutError: tensors that do not fit the network.
        """

    @abstractmethod
    def accepts(self, model: object) -> bool:
        """Whether ``model`` is a loaded model of this method."""

    @abstractmethod
    def bind(self, model: Any, styles: Sequence[Tensor], step: StylizeStep, device: torch.device) -> StyleOp:
        """The method bound to the job's style images (each ``(1, 3, h, w)`` float32 in ``[0, 1]``) and settings."""

    def checkpoint_name(self, step: StylizeStep) -> str | None:
        """The name of the weight record whose torch checkpoint the method loads (``None``: its weights are other
        files, ONNX networks)."""
        return None

    def describe(self, step: StylizeStep, where: str | None) -> str:
        """One line for ``colorstyle validate --no-storage``: the weights the step needs and where they come from."""
        return f"{self.name}: {where or 'no weights given'}"
