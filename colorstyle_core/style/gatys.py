"""Neural style transfer by image optimisation (Gatys, Ecker, Bethge, CVPR 2016).

The output image is optimised so that its VGG features at the content layer match
the content image's, its Gram matrices at the style layers match the style
image(s)', and its total variation stays small. Extras:

* colour preservation by luminance-only transfer (Gatys et al. 2016, "Preserving
  Color in Neural Artistic Style Transfer"): optimise the lightness with a style
  whose lightness is matched to the content's mean and deviation, then put the
  content's chroma (Lab a, b) back;
* several styles blended by weights (the target Gram matrix is their weighted mean);
* warm starts from a given image and an optional temporal term (Ruder et al. 2016)
  for video.

Everything is per image: a batch of N frames gives each frame the result it would
get alone. No global device, no printing, no file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from colorstyle_core import color
from colorstyle_core.devices import resolve_device
from colorstyle_core.loader import WeightsSource, load_strict, load_weights
from colorstyle_core.models import layout_of
from colorstyle_core.models.vgg import ALL_LAYER_NAMES, VGG, VGGFeatures, vgg_features_only
from colorstyle_core.provenance import Provenance
from colorstyle_core.style.lbfgs import lbfgs_minimize
from colorstyle_core.style.losses import content_loss, gram_matrix, masked_mse, style_loss, total_variation
from colorstyle_core.synthetic import generate
from colorstyle_core.weights import ImageNetContract, vgg_spec

Optimizer = Literal["lbfgs", "adam"]
Init = Literal["content", "noise", "image"]


@dataclass(frozen=True)
class StyleConfig:
    """Settings of one stylization (validated on construction).

    Attributes:
        content_layers: VGG layers for the content loss.
        style_layers: VGG layers for the Gram-matrix style loss.
        style_layer_weights: one weight per style layer (default 1 each).
        content_weight, style_weight, tv_weight: loss weights. Losses are means
            (content: over feature elements; style: over Gram entries, Gram divided by
            C*H*W; TV: over pixel differences of the [0, 1] image), so the defaults
            balance as in the PyTorch tutorial's normalisation.
        steps: optimiser updates (each one forward + backward pass).
        optimizer: ``"lbfgs"`` (per-image L-BFGS, no line search) or ``"adam"``.
        lr: step length; ``None`` = 1.0 for L-BFGS, 0.02 for Adam (image in [0, 1]).
        init: start from the content image, uniform noise, or an image passed to
            :func:`stylize` (warm start, e.g. the previous video frame's result).
        preserve_color: luminance-only transfer, keep the content's chroma.
        style_blend: one non-negative weight per style image (normalised to sum 1);
            ``None`` = equal weights.
        style_scale: style images are resized so their longer side is
            ``style_scale`` times the content's longer side.
        seed: seeds the noise initialisation.
        history_size: L-BFGS curvature pairs per image.
    """

    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] | None = None
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1.0
    steps: int = 300
    optimizer: Optimizer = "lbfgs"
    lr: float | None = None
    init: Init = "content"
    preserve_color: bool = False
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    seed: int = 0
    history_size: int = 20

    def __post_init__(self) -> None:
        for kind, layers in (("content", self.content_layers), ("style", self.style_layers)):
            unknown = sorted(set(layers) - ALL_LAYER_NAMES)
            if unknown:
                raise ValueError(
                    f"unknown {kind} layer(s) {unknown}; VGG layers are named like conv4_2, relu1_1, pool3"
                )
        if not self.style_layers and not self.content_layers:
            raise ValueError("at least one content or style layer is needed")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError(
                f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style layers"
            )
        for name in ("content_weight", "style_weight", "tv_weight", "style_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.style_scale == 0:
            raise ValueError("style_scale must be > 0")
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if self.init not in ("content", "noise", "image"):
            raise ValueError(f"init must be 'content', 'noise' or 'image', got {self.init!r}")
        if self.style_blend is not None and (any(w < 0 for w in self.style_blend) or sum(self.style_blend) <= 0):
            raise ValueError(f"style_blend weights must be >= 0 with a positive sum, got {self.style_blend}")

    @classmethod
    def from_options(cls, **options: object) -> StyleConfig:
        """A config from optional settings (a manifest's or the command line's): ``None`` takes the default.

        Raises:
            ValueError: as the constructor, for bad values; TypeError for unknown names.
        """
        return cls(**{k: v for k, v in options.items() if v is not None})  # type: ignore[arg-type]

    @property
    def step_length(self) -> float:
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "lbfgs" else 0.02)

    def blend_weights(self, n_styles: int) -> list[float]:
        """Normalised blend weights for ``n_styles`` style images.

        Raises:
            ValueError: when ``style_blend`` has a different length.
        """
        if n_styles < 1:
            raise ValueError("at least one style image is needed")
        weights = self.style_blend if self.style_blend is not None else (1.0,) * n_styles
        if len(weights) != n_styles:
            raise ValueError(f"{len(weights)} blend weights for {n_styles} style images")
        total = float(sum(weights))
        return [w / total for w in weights]


@dataclass(frozen=True)
class TemporalPrior:
    """A per-frame pull towards a target image (Ruder et al. 2016, short-term temporal loss).

    Attributes:
        target: ``(N, 3, H, W)`` float32 in [0, 1]: the previous stylized frame warped to this one.
        mask: ``(N, 1, H, W)`` float32 in [0, 1]: 1 where the warp is trusted (not occluded).
        weight: loss weight of ``masked_mse(x, target, mask)``.
    """

    target: Tensor
    mask: Tensor
    weight: float


@dataclass(frozen=True)
class StyleTargets:
    """Style statistics to match, computed once and reusable across calls.

    Attributes:
        grams: ``{layer: (C, C) or (N, C, C)}`` blended Gram matrices.
        size: the content ``(H, W)`` they were computed for (style images are scaled to it).
    """

    grams: dict[str, Tensor]
    size: tuple[int, int]


@dataclass(frozen=True)
class StylizeResult:
    """Output of :func:`stylize`.

    Attributes:
        images: ``(N, 3, H, W)`` sRGB in ``[0, 1]``, the extractor's dtype (float32).
        losses: ``{"total" | "content" | "style" | "tv" [| "temporal"]: (steps, N) float32}`` on
            the CPU: the weighted loss of each image before each update (loss curves);
            rows after an early stop repeat the last value.
        evaluations: forward + backward passes run.
    """

    images: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    evaluations: int = 0


def _resize_longer_side(image: Tensor, longer: int) -> Tensor:
    h, w = image.shape[-2:]
    scale = longer / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size == (h, w):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _as_batch(image: Tensor) -> Tensor:
    return image if image.ndim == 4 else image[None]


def _luminance_image(lightness: Tensor) -> Tensor:
    """``(N, 1, H, W)`` L -> ``(N, 3, H, W)`` gray sRGB with exactly that L."""
    return color.l_to_gray(lightness).expand(-1, 3, -1, -1)


def _matched_luminance(style_l: Tensor, content_l: Tensor) -> Tensor:
    """Match the style's L mean and deviation to each content image's.

    ``style_l`` ``(1, 1, h, w)``, ``content_l`` ``(N, 1, H, W)`` -> ``(N, 1, h, w)``.
    """
    mu_s, sd_s = style_l.mean(), style_l.std().clamp_min(1e-6)
    mu_c = content_l.mean(dim=(1, 2, 3), keepdim=True)
    sd_c = content_l.std(dim=(1, 2, 3), keepdim=True)
    return ((style_l - mu_s) * (sd_c / sd_s) + mu_c).clamp(0.0, 100.0)


def style_targets(
    extractor: VGGFeatures, styles: Sequence[Tensor], config: StyleConfig, content: Tensor
) -> StyleTargets:
    """Blended Gram matrices of the style image(s) at the content's scale.

    Args:
        extractor: the VGG feature extractor.
        styles: each ``(3, h, w)`` or ``(1, 3, h, w)`` float32 sRGB in [0, 1].
        config: layers, blend weights, style scale, colour preservation.
        content: ``(N, 3, H, W)`` content batch (its size, and with colour preservation
            its per-image lightness statistics, shape the targets).
    Returns:
        Targets with ``(C, C)`` Grams, or ``(N, C, C)`` with colour preservation (each
        content image gets the style with its own lightness statistics).
    """
    weights = config.blend_weights(len(styles))
    dev, dtype = content.device, content.dtype
    longer = max(1, round(max(content.shape[-2:]) * config.style_scale))
    content_l = color.rgb_to_l(content) if config.preserve_color else None
    grams: dict[str, Tensor] = {}
    with torch.no_grad():
        for w, style in zip(weights, styles):
            s = _resize_longer_side(_as_batch(style).to(dev, dtype), longer)
            if s.shape[1] == 1:
                s = s.expand(-1, 3, -1, -1)
            if content_l is not None:
                s = _luminance_image(_matched_luminance(color.rgb_to_l(s), content_l))
            feats = extractor(s, config.style_layers)
            for layer in config.style_layers:
                g = gram_matrix(feats[layer])
                g = g[0] if content_l is None else g
                grams[layer] = grams[layer] + w * g if layer in grams else w * g
    return StyleTargets(grams, tuple(content.shape[-2:]))


def stylize(
    extractor: VGGFeatures,
    content: Tensor,
    styles: Sequence[Tensor] | StyleTargets,
    config: StyleConfig,
    *,
    init_image: Tensor | None = None,
    temporal: TemporalPrior | None = None,
    steps: int | None = None,
) -> StylizeResult:
    """Stylize a batch of content images (Gatys et al. 2016).

    Args:
        extractor: frozen VGG features (its device is used).
        content: ``(N, 3, H, W)`` float32 sRGB in [0, 1] (``(N, 1, H, W)`` gray is expanded).
        styles: style image(s) as for :func:`style_targets`, or precomputed targets
            (reuse them across video frames of the same size).
        config: the settings.
        init_image: ``(N, 3, H, W)`` start image, required when ``config.init == "image"``.
        temporal: optional temporal prior (video).
        steps: override ``config.steps`` (e.g. fewer steps for warm-started frames).
    Returns:
        The images and per-step, per-image losses.
    Raises:
        ValueError: on shape mismatches, a missing ``init_image``, or layers the
            extractor's architecture lacks.
    """
    extractor.check_layers([*config.content_layers, *config.style_layers])
    param = next(extractor.parameters())
    dev, dtype = param.device, param.dtype  # float32 normally; float64 for exactness checks
    content = _as_batch(content).to(dev, dtype)
    if content.shape[1] == 1:
        content = content.expand(-1, 3, -1, -1)
    n = content.shape[0]
    targets = styles if isinstance(styles, StyleTargets) else style_targets(extractor, styles, config, content)
    if targets.size != tuple(content.shape[-2:]):
        raise ValueError(f"style targets were made for size {targets.size}, content is {tuple(content.shape[-2:])}")

    content_ab = None
    if config.preserve_color:
        lab = color.rgb_to_lab(content)
        content_ab = lab[:, 1:]
        content = _luminance_image(lab[:, :1])

    if config.init == "content":
        x0 = content
    elif config.init == "noise":
        gen = torch.Generator().manual_seed(config.seed)
        x0 = torch.rand(content.shape, generator=gen, dtype=dtype).to(dev)
    else:
        if init_image is None or tuple(init_image.shape) != tuple(content.shape):
            raise ValueError(f"init='image' needs init_image of shape {tuple(content.shape)}")
        x0 = init_image.to(dev, dtype)
        if config.preserve_color:
            x0 = _luminance_image(color.rgb_to_l(x0))

    with torch.no_grad():
        content_feats = extractor(content, config.content_layers) if config.content_layers else {}
    layer_w = config.style_layer_weights or (1.0,) * len(config.style_layers)
    deepest = [*config.content_layers, *config.style_layers]
    record: dict[str, list[Tensor]] = {"total": [], "content": [], "style": [], "tv": []}
    if temporal is not None:
        record["temporal"] = []

    def losses(x: Tensor) -> Tensor:
        feats = extractor(x, deepest)
        zero = torch.zeros(n, device=dev, dtype=dtype)
        c = sum((content_loss(feats[l], content_feats[l]) for l in config.content_layers), zero)
        s = sum(
            (w * style_loss(gram_matrix(feats[l]), targets.grams[l]) for l, w in zip(config.style_layers, layer_w)),
            zero,
        )
        tv = total_variation(x)
        parts = {"content": config.content_weight * c, "style": config.style_weight * s, "tv": config.tv_weight * tv}
        if temporal is not None:
            parts["temporal"] = temporal.weight * masked_mse(x, temporal.target, temporal.mask)
        total = sum(parts.values(), zero)
        for k, v in parts.items():
            record[k].append(v.detach().float().cpu())
        record["total"].append(total.detach().float().cpu())
        return total

    n_steps = config.steps if steps is None else steps
    if config.optimizer == "lbfgs":
        x, evaluations = lbfgs_minimize(
            losses, x0, n_steps, lr=config.step_length, history_size=config.history_size
        )
    else:
        x, evaluations = _adam(losses, x0, n_steps, config.step_length)

    with torch.no_grad():
        out = x.clamp(0.0, 1.0)
        if content_ab is not None:
            out = color.lab_to_rgb(torch.cat((color.rgb_to_l(out), content_ab), dim=1))
    curves = {k: _pad_rows(v, n_steps, n) for k, v in record.items()}
    return StylizeResult(out.detach(), curves, evaluations)


def _adam(f, x0: Tensor, steps: int, lr: float) -> tuple[Tensor, int]:
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            f(x).sum().backward()
        opt.step()
    return x.detach(), steps


def _pad_rows(rows: list[Tensor], steps: int, n: int) -> Tensor:
    if not rows:
        return torch.zeros(0, n)
    out = torch.stack(rows)
    if out.shape[0] < steps:
        out = torch.cat((out, out[-1:].expand(steps - out.shape[0], -1)))
    return out


def _extractor(arch: str, pooling: Literal["max", "avg"]) -> VGGFeatures:
    spec = vgg_spec(arch)
    assert isinstance(spec.preprocess, ImageNetContract)
    return VGGFeatures(arch, spec.preprocess, pooling)


class Stylizer:
    """A loaded VGG feature extractor with the stylization entry points.

    Build once per process (``Stylizer.from_weights``); style targets are cached per
    (style images, content size) so video frames of one size reuse them.

    Args:
        extractor: frozen :class:`VGGFeatures` with weights loaded, on its device.
        provenance: which weights are loaded.
    """

    def __init__(self, extractor: VGGFeatures, provenance: Provenance):
        self.extractor = extractor.to(memory_format=torch.channels_last)  # ~10% faster convolutions
        self.provenance = provenance
        self._cache: dict[tuple, StyleTargets] = {}

    @classmethod
    def from_weights(
        cls,
        arch: str = "vgg19",
        source: WeightsSource = WeightsSource(),
        *,
        device: str | torch.device | None = None,
        pooling: Literal["max", "avg"] = "max",
        untrained_seed: int | None = None,
    ) -> Stylizer:
        """Build the VGG features of ``arch`` and load torchvision's checkpoint (classifier dropped).

        Raises:
            ValueError: unknown architecture.
            colorstyle_core.loader.WeightsError: weights missing, corrupt or of the wrong layout.
        """
        if untrained_seed is not None:
            generated = generate(layout_of(lambda: VGG(vgg_spec(arch).name)), untrained_seed)
            return cls.from_state_dict(arch, vgg_features_only(generated),
                                       Provenance.generated(arch, untrained_seed), device=device, pooling=pooling)
        extractor = _extractor(arch, pooling)
        resolved = load_weights(extractor, vgg_spec(arch), source, key_filter=vgg_features_only)
        return cls(extractor.to(resolve_device(device)), Provenance.from_resolved(arch, resolved))

    @classmethod
    def from_state_dict(
        cls,
        arch: str,
        state_dict: Mapping[str, Tensor],
        provenance: Provenance,
        *,
        device: str | torch.device | None = None,
        pooling: Literal["max", "avg"] = "max",
    ) -> Stylizer:
        """Build from already verified ``features.*`` tensors (see ``loader.load_verified_state_dict``).

        Raises:
            ValueError: unknown architecture.
            colorstyle_core.loader.WeightsLayoutError: the tensors do not fit the architecture.
        """
        extractor = _extractor(arch, pooling)
        load_strict(extractor, state_dict, provenance.origin)
        return cls(extractor.to(resolve_device(device)), provenance)

    @property
    def device(self) -> torch.device:
        return next(self.extractor.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.extractor.parameters()).dtype

    def targets(self, styles: Sequence[Tensor], config: StyleConfig, content: Tensor, key: object = None
                ) -> StyleTargets:
        """:func:`style_targets`, cached under ``key`` (e.g. the style URIs) when given.

        Colour-preserving targets depend on each content image and are never cached.
        """
        content = content.to(self.device, self.dtype)
        if key is None or config.preserve_color:
            return style_targets(self.extractor, styles, config, content)
        full_key = (key, config.style_layers, config.style_blend, config.style_scale, tuple(content.shape[-2:]))
        if full_key not in self._cache:
            self._cache[full_key] = style_targets(self.extractor, styles, config, content)
        return self._cache[full_key]

    def __call__(self, content: Tensor, styles: Sequence[Tensor] | StyleTargets, config: StyleConfig,
                 **kwargs) -> StylizeResult:
        """:func:`stylize` with this stylizer's extractor."""
        return stylize(self.extractor, content, styles, config, **kwargs)
