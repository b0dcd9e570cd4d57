"""What a colorizer is to colorstyle: an entry of :data:`colorstyle_core.colorizers.COLORIZERS`.

Every entry answers what jobs, commands and the frame pipeline ask of a colorizer
(:class:`ColorizerKind`): what it takes (colour hints, a reference photo), whether a film's
frames form a chain (a recurrent colorizer), its own manifest settings and checks, which weight
records it reads and how the driver verifies its weights once. Each actor builds the colorizer
from those weights with the runtime of its kind of entry
(:data:`colorstyle_core.pipeline.RUNTIMES`: the runtimes read the entries, so entries do not
import them).

Most colorizers are one network and one published weight set (:class:`ColorizerEntry`): the
network's builder, its weight record (where the checkpoint lives, its hash, licence,
preprocessing contract), whether it takes colour hints, and its own pre- and post-processing
(:class:`Recipe`): how the network's input is made from an image, and how its ab at network
resolution becomes a full-resolution sRGB image (:class:`LabJoin`, or the authors' own way
under ``gamut="clip"``). :class:`colorstyle_core.colorizer.Colorizer` runs any such entry the
same way. A colorizer of another shape (several networks, a reference, a recurrence:
``deepexemplar``) has its own entry class in its file and its own runtime; nothing outside an
entry's file branches on a colorizer's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorstyle_core import color, lab8
from colorstyle_core.devices import compiled
from colorstyle_core.loader import WeightsSource, load_verified_state_dict
from colorstyle_core.pipeline_types import ColorizeStep, ModelWeights
from colorstyle_core.provenance import Provenance
from colorstyle_core.resample import resize_band, resize_bilinear, resize_matrix, resize_nearest_band
from colorstyle_core.synthetic import Generation
from colorstyle_core.weights import WeightSpec

BandUpsampler = Callable[[int, int], Tensor]
"""``(start, stop) -> (1, 2, stop - start, W)`` ab of those rows of a large image (see :meth:`Post.band_upsampler`)."""


class Post(Protocol):
    """How a network's ab becomes a full-resolution image: the colorizer's post-processing for one gamut mode."""

    def lightness(self, rgb: Tensor) -> Tensor:
        """L of full-resolution images: ``(N, C, H, W)`` in ``[0, 1]`` -> ``(N, 1, H, W)`` float32 in ``[0, 100]``."""
        ...

    def upsample(self, ab: Tensor, size: tuple[int, int]) -> Tensor:
        """``(N, 2, h, w)`` ab at network resolution -> ``(N, 2, H, W)`` at ``size``."""
        ...

    def band_upsampler(self, ab: Tensor, size: tuple[int, int]) -> BandUpsampler:
        """:meth:`upsample` of a ``(1, 2, h, w)`` ab to ``size``, a band of rows at a time."""
        ...

    def compose(self, lightness: Tensor, ab: Tensor) -> Tensor:
        """``(N, 1, H, W)`` L + ``(N, 2, H, W)`` ab -> ``(N, 3, H, W)`` sRGB in ``[0, 1]``."""
        ...

    def compose_eager(self, lab: Tensor) -> Tensor:
        """:meth:`compose` of an ``(N, 3, h, w)`` Lab image, never compiled (for samples of a frame)."""
        ...

    rgb8: bool
    """Whether :meth:`join_rgb8` is there (here: numba imports, and the L-preserving join)."""

    def join_rgb8(self, rgb8: np.ndarray, ab: Tensor, threads: int) -> np.ndarray:
        """8-bit frames and their network ab (``(N, H, W, 3)`` uint8, ``(N, 2, h, w)`` float32 on the CPU) ->
        ``(N, H, W, 3)`` uint8 sRGB: :meth:`lightness`, :meth:`upsample`, :meth:`compose` and rounding in one
        pass on ``threads`` threads (:func:`colorstyle_core.lab8.join_to_rgb8`). Only where :attr:`rgb8`."""
        ...


class LabJoin:
    """The Lab pipeline colorstyle runs for every colorizer (and Zhang et al.'s demo): ab upsampled
    bilinearly (``align_corners=False``), joined with the full-resolution L, converted to sRGB by
    :func:`colorstyle_core.color.lab_to_rgb` in the given gamut mode.

    Args:
        gamut: ``preserve-l`` (output L = input L) or ``clip`` (scikit-image's clipping).
        compile_colour: run the per-pixel maths compiled (:func:`~colorstyle_core.devices.compiled`):
            eager's values to float rounding, 3-5x faster on a CPU after a one-off compile per frame size.
    """

    def __init__(self, gamut: color.GamutMode, compile_colour: bool = False):
        self.gamut = gamut
        solver = compiled(color.nearest_at_luminance, compile_colour, dynamic=True)  # the out-of-gamut pixels

        def join_to_rgb(lightness: Tensor, ab: Tensor) -> Tensor:
            return color.lab_to_rgb(torch.cat((lightness, ab), dim=1), gamut, solver=solver)

        self._rgb_to_l = compiled(color.rgb_to_l, compile_colour)
        self._join_to_rgb = compiled(join_to_rgb, compile_colour)

    def lightness(self, rgb: Tensor) -> Tensor:
        return self._rgb_to_l(rgb)

    def upsample(self, ab: Tensor, size: tuple[int, int]) -> Tensor:
        return resize_bilinear(ab, size)

    def band_upsampler(self, ab: Tensor, size: tuple[int, int]) -> BandUpsampler:
        wy, wx = resize_matrix(ab.shape[-2], size[0], "bilinear"), resize_matrix(ab.shape[-1], size[1], "bilinear")
        return lambda r0, r1: resize_band(ab, wy[r0:r1], wx)

    def compose(self, lightness: Tensor, ab: Tensor) -> Tensor:
        return self._join_to_rgb(lightness, ab)

    def compose_eager(self, lab: Tensor) -> Tensor:
        return color.lab_to_rgb(lab, self.gamut)

    @property
    def rgb8(self) -> bool:
        return self.gamut == "preserve-l" and lab8.available()

    def join_rgb8(self, rgb8: np.ndarray, ab: Tensor, threads: int) -> np.ndarray:
        return lab8.join_to_rgb8(rgb8, ab.numpy(), threads)


class OpenCVLab:
    """An authors' pipeline in OpenCV's float Lab (DDColor's ``--gamut clip``): L of the original and the
    Lab -> sRGB conversion with OpenCV (clipping linear RGB), ab upsampled nearest (PyTorch's legacy
    ``nearest``). Not compiled: OpenCV does the per-pixel work."""

    def lightness(self, rgb: Tensor) -> Tensor:
        return color.rgb_to_l_opencv(rgb)

    def upsample(self, ab: Tensor, size: tuple[int, int]) -> Tensor:
        return ab if tuple(ab.shape[-2:]) == tuple(size) else F.interpolate(ab, size=size)

    def band_upsampler(self, ab: Tensor, size: tuple[int, int]) -> BandUpsampler:
        return lambda r0, r1: resize_nearest_band(ab, size, r0, r1)

    def compose(self, lightness: Tensor, ab: Tensor) -> Tensor:
        return color.lab_to_rgb_opencv(torch.cat((lightness, ab), dim=1))

    def compose_eager(self, lab: Tensor) -> Tensor:
        return color.lab_to_rgb_opencv(lab)

    rgb8 = False

    def join_rgb8(self, rgb8: np.ndarray, ab: Tensor, threads: int) -> np.ndarray:
        raise NotImplementedError("OpenCV's Lab join has no 8-bit pass")


class Recipe(Protocol):
    """A colorizer's own pre- and post-processing (its authors' inference code)."""

    def network_input(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        """``(N, C, H, W)`` sRGB or gray in ``[0, 1]`` -> the network's input at ``size`` (network resolution)."""
        ...

    def network_input_gray(self, gray: Tensor, size: tuple[int, int]) -> Tensor:
        """:meth:`network_input` of gray images given as their one channel (``(N, 1, H, W)`` in ``[0, 1]``,
        R = G = B): the resize runs on one channel instead of three, the result is the same."""
        ...

    def network_input_banded(self, images: Tensor, size: tuple[int, int], band_rows: int,
                             device: torch.device) -> Tensor:
        """:meth:`network_input` of one large ``(1, C, H, W)`` image (float or uint8, on the CPU), reading
        ``band_rows`` rows at a time; the result on ``device``."""
        ...

    def post(self, gamut: color.GamutMode, compile_colour: bool) -> Post:
        """The post-processing for ``gamut`` (``preserve-l``: :class:`LabJoin`; ``clip``: the authors')."""
        ...


@dataclass(frozen=True)
class Finetuning:
    """How ``colorstyle train`` fine-tunes a colorizer (:mod:`colorstyle_core.training.colorizer`).

    Attributes:
        blocks: the network's blocks by the authors' names (what ``train.train_blocks`` may name).
        default_blocks: the blocks that learn when the manifest names none.
    """

    blocks: tuple[str, ...]
    default_blocks: tuple[str, ...]


class ColorizerKind(Protocol):
    """What every colorizer entry answers (:data:`colorstyle_core.colorizers.COLORIZERS`), whatever its shape.

    Attributes:
        name: the colorizer's name in manifests (``pipeline.colorize.model``) and ``--model``.
        takes_hints: it takes colour hints (points, a colour keyframe).
        takes_reference: it takes a colour reference photo (``pipeline.colorize.reference``, a hints file's
            ``reference`` keyframes).
        recurrent: a film's frames form a chain (each frame takes the previous one's output), so frame
            ranges warm up and a shot's chain restarts at scene cuts.
        options: the ``pipeline.colorize`` settings only this colorizer reads (another's are refused).
        finetuning: its blocks for ``colorstyle train`` (``None``: it cannot be fine-tuned here).
        weight_specs: the weight records it reads (``colorstyle weights list``).
        networks: ``{weights name: builder}`` of its torch networks (``colorstyle models layout``).
    """

    name: str
    takes_hints: bool
    takes_reference: bool
    recurrent: bool
    options: tuple[str, ...]
    finetuning: Finetuning | None

    @property
    def weight_specs(self) -> tuple[WeightSpec, ...]: ...

    @property
    def networks(self) -> Mapping[str, Callable[[], nn.Module]]: ...

    def check_job_step(self, step: ColorizeStep, *, hints: bool, weights_sha256: str | None) -> None:
        """What a job's colorize step must hold for this colorizer (the manifest calls it once, when read).

        Args:
            step: the step as the manifest gives it.
            hints: whether the step names a hints prefix.
            weights_sha256: the manifest's ``weights.sha256``, as written.
        Raises:
            ValueError: a setting this colorizer does not take, or a bad value; the message names it.
        """
        ...

    def load_weights(self, source: WeightsSource) -> ModelWeights:
        """Resolve and verify its weights (the driver does this once, before any work).

        Raises:
            colorstyle_core.loader.WeightsError: missing, corrupt, without a hash, or of the wrong layout.
        """
        ...

    def describe(self, where: str | None) -> str:
        """One line for ``colorstyle validate --no-storage``: the weights it needs and where they come from."""
        ...


@dataclass(frozen=True)
class ColorizerEntry:
    """One colorizer of one network: the network, its published weights and its own pre/post-processing
    (a :class:`ColorizerKind`).

    Attributes:
        weights: the weight record; ``weights.name`` is the colorizer's name in manifests and flags.
        network: builds the architecture, freshly initialised, exactly as the checkpoint was saved.
        recipe: how the network's input is made and its output turned into an image.
        takes_hints: the network takes colour hints (SIGGRAPH17's user-guided network).
        generation: how :mod:`colorstyle_core.synthetic` makes UNTRAINED weights that behave like trained ones.
        finetuning: its blocks for ``colorstyle train`` (``None``: it cannot be fine-tuned here).
    """

    weights: WeightSpec
    network: Callable[[], nn.Module]
    recipe: Recipe
    takes_hints: bool = False
    generation: Generation = field(default_factory=Generation)
    finetuning: Finetuning | None = None
    takes_reference: ClassVar[bool] = False
    recurrent: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        return self.weights.name

    @property
    def net_size(self) -> tuple[int, int]:
        """The network's input ``(height, width)`` in pixels (from the weights' contract)."""
        return self.weights.preprocess.net_size  # type: ignore[union-attr]

    @property
    def weight_specs(self) -> tuple[WeightSpec, ...]:
        return (self.weights,)

    @property
    def networks(self) -> Mapping[str, Callable[[], nn.Module]]:
        return {self.name: self.network}

    def check_job_step(self, step: ColorizeStep, *, hints: bool, weights_sha256: str | None) -> None:
        return None  # the manifest refuses hints, a reference and other colorizers' options for it

    def load_weights(self, source: WeightsSource) -> ModelWeights:
        state_dict, resolved = load_verified_state_dict(self.weights, source)
        return ModelWeights.from_state_dict(self.name, state_dict, Provenance.from_resolved(self.name, resolved))

    def describe(self, where: str | None) -> str:
        return (f"{self.name} weights {self.weights.filename} sha256 {self.weights.sha256}... from "
                f"{where or f'the cache, else {self.weights.url}'}")


def ab_bin_centres(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Random ab bin centres inside the disk of radius 80, divided by 110: ``(2, bins, 1, 1)`` float32
    (a generated ECCV16's ``model_out``, whose trained weights are the bin centres / 110)."""
    radius = 80.0 * torch.rand(shape[1], generator=gen).sqrt()
    angle = 2 * math.pi * torch.rand(shape[1], generator=gen)
    centres = torch.stack((radius * angle.cos(), radius * angle.sin())) / 110.0
    return centres.view(shape)
