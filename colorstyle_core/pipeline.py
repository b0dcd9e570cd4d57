"""The frame pipeline: what happens to one frame, in order, for stills and for video.

For a batch of decoded frames (each ``(1, C, H, W)`` float32 sRGB or gray in ``[0, 1]``):

1. **colorize** (Zhang et al.; :class:`~colorstyle_core.colorizer.Colorizer`): L at the
   network size in, ab out, upsampled and joined with the full-resolution L;
2. **temporal colour** (video, optional; :class:`~colorstyle_core.temporal.ABStabilizer`):
   the predicted ab blended with the previous output's ab carried along the motion;
3. **processing size**: the longer side brought to ``stylize.size`` (never enlarged);
4. **stylize**, by the step's method (:data:`colorstyle_core.style.methods.METHODS`: ``gatys``,
   ``fast``, ``arbitrary``), bound to the job's style images (a
   :class:`~colorstyle_core.style.methods.entry.StyleOp`); for video with temporal consistency
   along a shot, in the method's own way (its :class:`~colorstyle_core.style.methods.entry.ShotChain`);
5. **restore size**: back to the input's size (jobs), or kept at the processing size
   (``keep_input_size=False``: the single-image command's ``--size``).

Each :class:`FrameResult` carries the output, the stylization loss curves and the
seconds this frame spent in each :class:`~colorstyle_core.timing.Stage` (batch work is
shared evenly by the batch's frames). Still images and per-frame video go through
:meth:`FramePipeline.process`; consecutive frames of one video through a
:class:`~colorstyle_core.sequence.FrameSequence` (``sequence.py``), which carries the temporal
chains from batch to batch and hands over to the next frame range at a seam
(:func:`~colorstyle_core.temporal.handoff_weight`). The steps, the weights and the results are
the data types of :mod:`colorstyle_core.pipeline_types`.

No I/O here: callers decode and encode (``jobs/worker.py``, the single-image commands,
the benchmark's model loop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from colorstyle_core.color import as_rgb, to_uint8
from colorstyle_core.colorizer import Colorizer, colorize_rgb8
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.colorizers.deepexemplar import ExemplarEntry, unflatten
from colorstyle_core.colorizers.entry import ColorizerEntry
from colorstyle_core.devices import Precision, resolve_device, tune_for
from colorstyle_core.exemplar import ExemplarColorizer, Reference
from colorstyle_core.hints import ColorHints, HintPull
from colorstyle_core.imageio import frames_float
from colorstyle_core.pipeline_types import (
    BAND_PIXELS,
    ColorizeStep,
    FrameResult,
    ModelWeights,
    PipelineConfig,
)
from colorstyle_core.resample import (
    BandedDownscale,
    band_as_float,
    bands,
    longer_side_size,
    resize_band,
    resize_longer,
    resize_matrix,
    resize_to,
)
from colorstyle_core.sequence import FrameSequence
from colorstyle_core.style.methods import METHODS
from colorstyle_core.style.methods.entry import StyleOp
from colorstyle_core.synthetic import UNTRAINED_NOTE, UNTRAINED_TAG
from colorstyle_core.timing import Stage, StageTimer, scaled


class FramePipeline:
    """The loaded models of a pipeline and the order they run in.

    Args:
        config: the steps.
        colorizer: loaded when ``config.colorize`` is set.
        stylizer: loaded when ``config.stylize`` is set: a model of its method
            (:meth:`~colorstyle_core.style.methods.entry.StyleMethod.build`).
        styles: the style images, each ``(1, 3, h, w)`` float32 in ``[0, 1]``, in the
            order of ``config.stylize.styles``.
    Raises:
        ValueError: a step without its model, a model of another method, an unknown method, or the
            wrong number of style images.
    """

    def __init__(self, config: PipelineConfig, colorizer: Colorizer | ExemplarColorizer | None = None,
                 stylizer: object | None = None,
                 styles: Sequence[Tensor] = ()):
        if (config.colorize is None) != (colorizer is None) or (config.stylize is None) != (stylizer is None):
            raise ValueError("every step of the pipeline needs its model, and only those")
        if config.colorize is None and config.stylize is None:
            raise ValueError("the pipeline needs a colorize or a stylize step")
        if config.stylize is not None and len(styles) != len(config.stylize.styles):
            raise ValueError(f"{len(styles)} style images for {len(config.stylize.styles)} style URIs")
        self.config = config
        self.colorizer = colorizer
        self.stylizer = stylizer
        self.styles = list(styles)
        self.provenances = tuple(m.provenance for m in (colorizer, stylizer) if m is not None)  # type: ignore
        self.device = colorizer.device if colorizer is not None else stylizer.device  # type: ignore[union-attr]
        self.style: StyleOp | None = None
        if (step := config.stylize) is not None:
            method = METHODS.get(step.method)
            if not method.accepts(stylizer):
                raise ValueError(f"a {type(stylizer).__name__} for the stylization method {step.method}")
            self.style = method.bind(stylizer, self.styles, step, self.device)
        self._sync = torch.cuda.synchronize if self.device.type == "cuda" else None

    @classmethod
    def build(cls, config: PipelineConfig, styles: Sequence[Tensor] = (), *,
              colorizer_weights: ModelWeights | None = None, stylizer_weights: ModelWeights | None = None,
              untrained_seed: int | None = None, device: str | torch.device | None = None,
              precision: Precision = "fp32", compile_colour: bool = False,
              reference: np.ndarray | None = None) -> FramePipeline:
        """Build the models of ``config`` from verified weights, or generated ones.

        Args:
            config: the steps.
            styles: the style images (see the class).
            reference: the job's reference photo (``(H, W, 3)`` uint8 or float32 in ``[0, 1]``) for a colorizer
                that takes one (``deepexemplar``), if any.
            colorizer_weights, stylizer_weights: verified tensors for the steps that run.
            untrained_seed: use generated UNTRAINED weights with this seed instead (smoke runs; a method
                whose real weights are installed, ``arbitrary``, uses those).
            device: ``None``/``"auto"`` = CUDA if available, else CPU.
            precision: the networks' arithmetic on CUDA (:func:`~colorstyle_core.devices.autocast`).
            compile_colour: compile the colorizer's per-pixel colour maths
                (:meth:`~colorstyle_core.colorizer.Colorizer.compile_colour_math`).
        Raises:
            ValueError: a step without weights (and no ``untrained_seed``); a reference for a colorizer that
                takes none.
            colorstyle_core.loader.WeightsLayoutError: tensors that do not fit the architecture.
        """
        colorizer = stylizer = None
        if (c := config.colorize) is not None:
            entry = COLORIZERS.get(c.model)
            colorizer = RUNTIMES[type(entry)](entry, c, colorizer_weights, untrained_seed=untrained_seed,
                                              device=device, precision=precision, compile_colour=compile_colour,
                                              reference=reference)
        if (s := config.stylize) is not None:
            stylizer = METHODS.get(s.method).build(s, stylizer_weights, untrained_seed=untrained_seed, device=device,
                                                   precision=precision)
        tune_for(resolve_device(device))
        return cls(config, colorizer, stylizer, styles)

    # ---- what the models are -----------------------------------------------------------

    @property
    def untrained(self) -> bool:
        """Whether any model runs on generated weights."""
        return any(p.untrained for p in self.provenances)

    @property
    def weights_text(self) -> str:
        """Provenance of every model, for metadata and metrics (says UNTRAINED where it applies)."""
        text = "; ".join(p.describe() for p in self.provenances)
        return f"{text} -- {UNTRAINED_NOTE}" if self.untrained else text

    @property
    def weights_tag(self) -> str:
        """:attr:`weights_text` without the long note, prefixed ``UNTRAINED:`` where it applies (metrics rows)."""
        text = "; ".join(p.describe() for p in self.provenances)
        return f"{UNTRAINED_TAG}: {text}" if self.untrained else text

    @property
    def temporal(self) -> bool:
        """Whether a film's frames go through chains: a step with temporal settings, or a recurrent colorizer."""
        return self.config.temporal or (self.colorizer is not None and self.colorizer.recurrent)

    def hint_pull(self, hints: ColorHints | None, size: tuple[int, int]) -> HintPull | None:
        """The pull that keeps ``hints``' colours in an image of ``size``, or ``None`` (no hints, or adherence 0)."""
        step, colorizer = self.config.colorize, self.colorizer
        if hints is None or hints.empty or step is None or colorizer is None or step.hint_adherence == 0:
            return None
        return HintPull(hints, size, colorizer.net_size, step.hint_adherence, step.hint_radius)

    def keep_hints(self, ab: Tensor, hints: ColorHints | None) -> Tensor:
        """``(1, 2, H, W)`` ab pulled towards ``hints`` (as is without hints)."""
        pull = self.hint_pull(hints, tuple(ab.shape[-2:]))
        return ab if pull is None else pull(ab)

    def timer(self) -> StageTimer:
        """A :class:`StageTimer` that waits for the device where it runs asynchronously."""
        return StageTimer(self._sync)

    # ---- independent frames: stills, and video without temporal consistency -------------

    def process(self, images: Sequence[Tensor] | Tensor, hints: Sequence[ColorHints | None] | None = None,
                references: Sequence[Reference | None] | None = None) -> list[FrameResult]:
        """Process frames independently of each other (any mix of sizes).

        Args:
            images: each ``(1, C, H, W)`` float32 in ``[0, 1]`` (C = 1 gray or 3 sRGB), or one
                ``(N, C, H, W)`` batch; any device. Or video frames as decoded (:func:`~.imageio.frames_rgb8`),
                which a colorizer alone on the CPU takes in one pass (:func:`~.colorizer.colorize_rgb8`: uint8 out).
            hints: SIGGRAPH17 colour hints, one per image (or ``None``).
            references: ``deepexemplar``: each image's reference (``None``: the job's).
        Returns:
            One :class:`FrameResult` per image, in order; ``colorized`` set when both steps run.
        Raises:
            ValueError, colorstyle_core.hints.HintsError: hints that do not fit.
        """
        if isinstance(images, Tensor) and images.dtype == torch.uint8:
            if (results := _rgb8_results(self, images, hints)) is not None:
                return results
            images = frames_float(images.to(self.device))  # a GPU gets the 8-bit frames: a quarter of the bytes
        batch = list(images.split(1)) if isinstance(images, Tensor) else list(images)
        if not batch:
            return []
        timer = self.timer()
        with timer(Stage.PREPROCESS):
            batch = [b.to(self.device) for b in batch]
        if self.colorizer is not None:
            with timer(Stage.COLORIZE):
                pairs = self.colorizer.predict_ab_list([b[0] for b in batch], hints, references) \
                    if references is not None else self.colorizer.predict_ab_list([b[0] for b in batch], hints)
                batch = [self.colorizer.compose(lightness[None], self.keep_hints(ab[None], None if hints is None
                                                                                  else hints[i]))
                         for i, (lightness, ab) in enumerate(pairs)]
        else:
            batch = [as_rgb(b) for b in batch]
        colorized = list(batch) if self.colorizer is not None and self.stylizer is not None else [None] * len(batch)
        curves: list[dict[str, list[float]]] = [{} for _ in batch]
        if self.stylizer is not None:
            with timer(Stage.STYLIZE):
                batch, curves = self._stylize_independently(batch)
        share = scaled(timer.take(), 1.0 / len(batch))
        return [FrameResult(image, before, curve, dict(share))
                for image, before, curve in zip(batch, colorized, curves)]

    def _stylize_independently(self, batch: list[Tensor]) -> tuple[list[Tensor], list[dict[str, list[float]]]]:
        """Per-frame stylization; frames of one size share a batch (and Gatys' style targets)."""
        step, style = self.config.stylize, self.style
        assert step is not None and style is not None
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, b in enumerate(batch):
            by_size.setdefault(tuple(b.shape[-2:]), []).append(i)
        out = list(batch)
        curves: list[dict[str, list[float]]] = [{} for _ in batch]
        for size, idx in by_size.items():
            content = resize_longer(torch.cat([batch[i] for i in idx]), step.size, upscale=not step.keep_input_size)
            images, losses = style(content)
            images = resize_to(images, size) if step.keep_input_size else images
            for j, i in enumerate(idx):
                out[i] = images[j : j + 1]
                curves[i] = {k: v[:, j].tolist() for k, v in losses.items()}
        return out, curves

    # ---- one large still, in bands ----------------------------------------------------------

    def process_large(self, image: Tensor, hints: ColorHints | None = None, band_rows: int | None = None,
                      reference: Reference | None = None) -> FrameResult:
        """Process one large still a band of rows at a time; the result is 8-bit.

        The steps of :meth:`process` with every full-resolution operation done per band (the colorizer's
        ``predict_ab_bands``, the stylizer's processing size made by :class:`~colorstyle_core.resample.BandedDownscale`
        and its result restored with the rows of a bicubic :func:`~colorstyle_core.resample.resize_matrix`): memory
        is the input, the 8-bit output (3 bytes per pixel; 6 with both steps, for ``colorized``) and one band. The
        network's input and the stylizer's content are bit-identical to :meth:`process`'s (Zhang, DDColor); the
        full-size ab and the restored stylization are interpolated as matrices, equal to float rounding.

        Args:
            image: ``(1, C, H, W)`` float32 in ``[0, 1]`` or uint8 (8-bit levels), on the CPU.
            hints: SIGGRAPH17 hints for this image.
            band_rows: rows per band (default: :data:`BAND_PIXELS` pixels' worth).
            reference: ``deepexemplar``: the still's own reference (default: the job's).
        Returns:
            A :class:`FrameResult` whose ``image`` (and ``colorized``) are ``(1, 3, H, W)`` uint8.
        """
        h, w = image.shape[-2:]
        band_rows = band_rows or max(8, BAND_PIXELS // w)
        timer = self.timer()
        step = self.config.stylize
        size = longer_side_size((h, w), step.size, upscale=not step.keep_input_size) if step else (h, w)
        content = BandedDownscale((h, w), size) if step else None
        colorized = np.empty((h, w, 3), np.uint8)
        with timer(Stage.COLORIZE):
            if self.colorizer is not None:
                pull = self.hint_pull(hints, (h, w))
                rgb_bands = ((r0, r1, self.colorizer.compose(lightness, ab if pull is None else pull(ab, r0)))
                             for r0, r1, lightness, ab in self.colorizer.predict_ab_bands(
                                 image, hints, band_rows, **({"reference": reference} if reference else {})))
            else:
                rgb_bands = ((r0, r1, as_rgb(band_as_float(image, r0, r1))) for r0, r1 in bands(h, band_rows))
            for r0, r1, rgb in rgb_bands:
                colorized[r0:r1] = to_uint8(rgb)[0].permute(1, 2, 0).cpu().numpy()
                if content is not None:
                    content.add(rgb.cpu())
        out, curves = colorized, {}
        if step is not None and self.style is not None and content is not None:
            with timer(Stage.STYLIZE):
                x = content.result().to(self.device)
                stylized, losses = self.style(x)
                curves = {k: v[:, 0].tolist() for k, v in losses.items()}
                if step.keep_input_size:
                    out = np.empty((h, w, 3), np.uint8)
                    wy, wx = resize_matrix(size[0], h, "bicubic"), resize_matrix(size[1], w, "bicubic")
                    for r0, r1 in bands(h, band_rows):
                        band = resize_band(stylized, wy[r0:r1], wx).clamp_(0.0, 1.0)
                        out[r0:r1] = to_uint8(band)[0].permute(1, 2, 0).cpu().numpy()
                else:
                    out = to_uint8(stylized)[0].permute(1, 2, 0).cpu().numpy()
        before = _u8_view(colorized) if self.colorizer is not None and self.stylizer is not None else None
        return FrameResult(_u8_view(out), before, curves, timer.take())

    # ---- consecutive frames of one video --------------------------------------------------

    def sequence(self, handoff_start: int | None = None, stop: int | None = None) -> FrameSequence:
        """A :class:`~colorstyle_core.sequence.FrameSequence` for consecutive frames of one video (a frame range).

        Args:
            handoff_start: with temporal consistency, the frame where the next range starts
                warming up: from there this range also runs a fresh chain and fades into it.
            stop: one past the range's last frame (needed with ``handoff_start``).
        """
        return FrameSequence(self, handoff_start, stop)


def _rgb8_results(pipeline: FramePipeline, frames: Tensor, hints: Sequence[ColorHints | None] | None
                  ) -> list[FrameResult] | None:
    """8-bit frames as decoded through :func:`~.colorizer.colorize_rgb8` when the pipeline is a colorizer alone
    without hints; ``None`` where it is not, or that colorizer has no such pass (the caller takes the float path)."""
    if not isinstance(pipeline.colorizer, Colorizer) or pipeline.stylizer is not None or (
            hints is not None and any(h is not None and not h.empty for h in hints)):
        return None
    timer = pipeline.timer()
    with timer(Stage.COLORIZE):
        out = colorize_rgb8(pipeline.colorizer, frames)
    if out is None:
        return None
    share = scaled(timer.take(), 1.0 / len(out))
    return [FrameResult(image, None, {}, dict(share)) for image in out.split(1)]


def _network_colorizer(entry: ColorizerEntry, step: ColorizeStep, weights: ModelWeights | None, *,
                       untrained_seed: int | None, device: str | torch.device | None, precision: Precision,
                       compile_colour: bool, reference: np.ndarray | None) -> Colorizer:
    """A one-network colorizer (Zhang et al., DDColor) from verified weights or generated ones."""
    if reference is not None:
        raise ValueError(f"{entry.name} takes no reference photo")
    if untrained_seed is not None:
        colorizer = Colorizer.from_weights(entry.name, device=device, gamut=step.gamut, untrained_seed=untrained_seed)
    elif weights is None:
        raise ValueError(f"no weights for the colorizer {entry.name}")
    else:
        colorizer = Colorizer.from_state_dict(entry.name, weights.state_dict(), weights.provenance, device=device,
                                              gamut=step.gamut)
    colorizer.precision = precision
    colorizer.compile_colour_math(compile_colour)
    return colorizer


def _exemplar_colorizer(entry: ExemplarEntry, step: ColorizeStep, weights: ModelWeights | None, *,
                        untrained_seed: int | None, device: str | torch.device | None, precision: Precision,
                        compile_colour: bool, reference: np.ndarray | None) -> ExemplarColorizer:
    """``deepexemplar`` from verified weights (its entry's ``load_weights``: the three files as one flat state dict)
    or generated ones, with the job's reference prepared (``None``: every input names its own, in its hints file).
    Runs in float32 (``precision`` and ``compile_colour`` are for the one-network colorizers)."""
    kwargs = {"gamut": step.gamut, "image_size": step.image_size, "device": device}
    if untrained_seed is not None:
        colorizer = ExemplarColorizer.from_seed(untrained_seed, **kwargs)
    elif weights is None:
        raise ValueError(f"no weights for the colorizer {entry.name}")
    else:
        colorizer = ExemplarColorizer.from_state_dicts(unflatten(weights.state_dict()), weights.provenance, **kwargs)
    if reference is not None:
        colorizer.set_reference(reference, step.reference or "reference")
    return colorizer


RUNTIMES: dict[type, Callable[..., Colorizer | ExemplarColorizer]] = {
    ColorizerEntry: _network_colorizer,
    ExemplarEntry: _exemplar_colorizer,
}
"""What builds a colorizer of each kind of registry entry (:data:`~colorstyle_core.colorizers.COLORIZERS`) in an
actor. A new network is one file in ``colorizers/`` and needs nothing here; a colorizer of a new shape (its own
entry class and runtime class) adds its line."""


def _u8_view(hwc: np.ndarray) -> Tensor:
    """An ``(H, W, 3)`` uint8 buffer as a ``(1, 3, H, W)`` tensor view (no copy)."""
    return torch.from_numpy(hwc).permute(2, 0, 1)[None]
