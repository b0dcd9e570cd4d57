"""What each kind of training trains: its model, its loss, what it exports and how it is validated.

A task is built in every Ray Train worker (:mod:`jobs.train.loop`); the loop is the same
for all kinds. Models and losses are ``colorstyle_core``'s; a task only wires them up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from colorstyle_core import color, loader, quality
from colorstyle_core.catalog import build, generated_state_dict, get_spec
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.imageio import to_uint8_hwc
from colorstyle_core.models import VGGFeatures, vgg_features_only
from colorstyle_core.models.johnson import TransformerNet
from colorstyle_core.pipeline_types import ModelWeights
from colorstyle_core.provenance import Provenance
from colorstyle_core.style.feedforward import FAST_STYLIZER
from colorstyle_core.style.gatys import StyleConfig
from colorstyle_core.style.methods.fast import METHOD as FAST_METHOD
from colorstyle_core.training.colorizer import ColorizerTraining as ColorizerModule
from colorstyle_core.training.stylizer import StylizerTraining as StylizerModule
from colorstyle_core.weights import ImageNetContract
from jobs.train.manifest import ColorizerTraining, StylizerTraining, TrainManifest

EXAMPLES = 6
"""Held-out images kept as side-by-side strips for the report."""


def all_reduce_sum(t: Tensor) -> Tensor:
    """The sum of ``t`` over the workers (``t`` itself with one worker)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


class _Task:
    """What every kind shares: ``module`` (an ``nn.Module`` whose ``forward(batch, generator)`` gives
    ``(loss, parts)``, whose ``trainable()`` lists what learns and whose ``net`` is what is exported)."""

    module: nn.Module

    needs_pairs = False
    """Whether steps also get consecutive video frames (a temporal loss)."""

    def loss(self, model: nn.Module, batch: Tensor, generator: torch.Generator, pairs: Tensor | None = None
             ) -> tuple[Tensor, dict[str, float]]:
        """One step's loss through ``model`` (the module, wrapped for data parallelism)."""
        return model(batch, generator) if pairs is None else model(batch, generator, pairs)

    def trainable(self) -> list[nn.Parameter]:
        return self.module.trainable()  # type: ignore[operator]

    def export_state(self) -> dict[str, Tensor]:
        """The trained network's state_dict: the published layout for colorizers, the transformation
        network for fast stylizers (what ``method: fast`` loads)."""
        return {k: v.detach().clone() for k, v in self.module.net.state_dict().items()}  # type: ignore[union-attr]


class ColorizerTask(_Task):
    """Fine-tuning ECCV16 or SIGGRAPH17 (:class:`colorstyle_core.training.colorizer.ColorizerTraining`).

    Args:
        manifest: the run.
        start: the starting weights (verified by the driver), or ``None`` for generated ones.
    """

    kind = "colorizer"

    def __init__(self, manifest: TrainManifest, start: ModelWeights | None):
        spec = manifest.train
        assert isinstance(spec, ColorizerTraining)
        self.spec = spec
        self.name = spec.model
        net = build(spec.model)
        state = start.state_dict() if start is not None else generated_state_dict(spec.model, spec.seed)
        loader.load_strict(net, state, start.provenance.origin if start is not None else "generated weights")
        self.start_state = {k: v.clone() for k, v in net.state_dict().items()}
        self.start_provenance = start.provenance if start is not None else Provenance.generated(spec.model, spec.seed)
        self.module: nn.Module = ColorizerModule(net, spec.train_blocks)

    def prepare(self, pool: Sequence[Tensor], size: int) -> dict[str, Any]:
        """ECCV16: the class-rebalancing weights from *this* training set (every worker's images)."""
        module = self.module
        assert isinstance(module, ColorizerModule)
        if not module.eccv16:
            return {}
        counts = torch.zeros(module.centres.shape[0], dtype=torch.float32)
        for image in pool:  # each kept image as a whole, at the crop size's scale
            rgb = image[None].float() / 255.0
            s = size / min(rgb.shape[-2:])
            hw = (max(8, round(rgb.shape[-2] * s) // 8 * 8), max(8, round(rgb.shape[-1] * s) // 8 * 8))
            counts += module.bin_counts(torch.nn.functional.interpolate(rgb, size=hw, mode="area"))
        counts = all_reduce_sum(counts)
        module.set_rebalancing(counts.clamp_min(0))
        return {"rebalancing_bins_seen": int((counts > 0).sum())}

    def sidecar(self) -> dict[str, Any]:
        return {"model": self.name, "base_weights": self.start_provenance.describe(),
                "base_sha256": self.start_provenance.sha256, "train_blocks": list(self.spec.train_blocks)}

    def validate(self, images: Sequence[tuple[str, Tensor]], tuned: dict[str, Tensor],
                 device: torch.device | str = "cpu", examples: int = EXAMPLES
                 ) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray]]]:
        """Held-out images colorized from their L with the starting and the fine-tuned weights.

        Args:
            images: ``(name, (3, H, W) uint8)`` held-out colour images.
            tuned: the trained state_dict.
            examples: how many side-by-side strips to return.
        Returns:
            ``(rows, strips)``: one row per image and weights (``start``, ``tuned``, and
            ``grey`` for the grey baseline) with PSNR, SSIM, ab error, colourfulness and its
            difference to the truth; and for the first ``examples`` images a strip
            ``grey input | start | tuned | truth`` (``(H, 4W, 3)`` uint8).
        """
        rows, strips = [], []
        models = {"start": Colorizer.from_state_dict(self.name, self.start_state, self.start_provenance, device=device),
                  "tuned": Colorizer.from_state_dict(self.name, tuned, self.start_provenance, device=device)}
        for name, image in images:
            rgb = image[None].float().to(device) / 255.0
            truth = to_uint8_hwc(rgb)
            grey = color.l_to_gray(color.rgb_to_l(rgb))
            outputs = {which: to_uint8_hwc(model(grey)) for which, model in models.items()}
            outputs["grey"] = to_uint8_hwc(grey.expand(-1, 3, -1, -1))
            if len(strips) < examples:
                strips.append((name, np.concatenate([outputs["grey"], outputs["start"], outputs["tuned"], truth], 1)))
            for which, pred in outputs.items():
                q = quality.evaluate_pair(pred, truth)
                rows.append({"sample": name, "weights": which, "psnr": q.psnr if math.isfinite(q.psnr) else None,
                             "ssim": q.ssim, "ab_error": q.ab_error, "colorfulness": q.colorfulness_pred,
                             "delta_colorfulness": q.delta_colorfulness})
        return rows, strips


class StylizerTask(_Task):
    """Training a fast stylizer (:class:`colorstyle_core.training.stylizer.StylizerTraining`).

    Args:
        manifest: the run.
        start: the verified VGG loss network (``features.*``), or ``None`` for generated weights.
        styles: the style images, each ``(3, h, w)`` uint8.
        style_hashes: ``(uri, sha256)`` of each style file, for the sidecar.
    """

    kind = "stylizer"
    name = FAST_STYLIZER.name

    def __init__(self, manifest: TrainManifest, start: ModelWeights | None, styles: Sequence[Tensor],
                 style_hashes: Sequence[tuple[str, str]] = ()):
        spec = manifest.train
        self.style_hashes = list(style_hashes)
        assert isinstance(spec, StylizerTraining)
        self.spec = spec
        vgg = start.state_dict() if start is not None else vgg_features_only(generated_state_dict(spec.vgg, spec.seed))
        self.vgg_provenance = start.provenance if start is not None else Provenance.generated(spec.vgg, spec.seed)
        spec_vgg = get_spec(spec.vgg)
        assert isinstance(spec_vgg.preprocess, ImageNetContract)
        extractor = VGGFeatures(spec.vgg, spec_vgg.preprocess)
        loader.load_strict(extractor, vgg, self.vgg_provenance.origin)
        self.config = self.style_config(spec)
        torch.manual_seed(spec.seed)  # the network's initialisation
        net = TransformerNet(spec.channels)
        self.start_state = {k: v.clone() for k, v in net.state_dict().items()}
        self.styles = [s[None].float() / 255.0 for s in styles]
        self.module: nn.Module = StylizerModule(net, extractor, self.styles, self.config, spec.size,
                                                spec.temporal_weight)
        self.needs_pairs = spec.temporal_weight > 0

    @staticmethod
    def style_config(spec: StylizerTraining) -> StyleConfig:
        """The manifest's layers, weights and blend as the :class:`StyleConfig` the Gatys code shares."""
        return StyleConfig(content_layers=tuple(spec.content_layers), style_layers=tuple(spec.style_layers),
                           content_weight=spec.content_weight, style_weight=spec.style_weight,
                           tv_weight=spec.tv_weight, style_blend=tuple(spec.blend) if spec.blend else None)

    def prepare(self, pool: Sequence[Tensor], size: int) -> dict[str, Any]:
        return {}

    def sidecar(self) -> dict[str, Any]:
        spec = self.spec
        return {"model": self.name, "method": FAST_METHOD.name, "channels": spec.channels, "size": spec.size,
                "styles": [{"uri": uri, "sha256": digest} for uri, digest in self.style_hashes],
                "blend": self.config.blend_weights(len(spec.styles)),
                "loss_weights": {"content": spec.content_weight, "style": spec.style_weight, "tv": spec.tv_weight,
                                 "temporal": spec.temporal_weight},
                "content_layers": list(spec.content_layers), "style_layers": list(spec.style_layers),
                "vgg": spec.vgg, "vgg_weights": self.vgg_provenance.describe(),
                "vgg_sha256": self.vgg_provenance.sha256}

    def validate(self, images: Sequence[tuple[str, Tensor]], tuned: dict[str, Tensor],
                 device: torch.device | str = "cpu", examples: int = EXAMPLES
                 ) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray]]]:
        """Held-out images stylized by the starting and the trained network, with their loss terms.

        Args:
            images: ``(name, (3, H, W) uint8)`` held-out content images.
            tuned: the trained state_dict.
            examples: how many strips to return.
        Returns:
            ``(rows, strips)``: per image a row for ``input`` (the content as its own output:
            the style loss of doing nothing), ``start`` and ``tuned``, with the weighted
            ``style_loss`` and ``content_loss`` at the training size; strips
            ``input | start | tuned`` (``(H, 3W, 3)`` uint8).
        """
        module = self.module
        assert isinstance(module, StylizerModule)
        nets = {"start": TransformerNet(self.spec.channels), "tuned": TransformerNet(self.spec.channels)}
        nets["start"].load_state_dict(self.start_state)
        nets["tuned"].load_state_dict(tuned)
        rows, strips = [], []
        with torch.no_grad():
            for name, image in images:
                x = image[None].float().to(device) / 255.0
                x = torch.nn.functional.interpolate(x, size=(self.spec.size, self.spec.size), mode="bilinear",
                                                    antialias=True, align_corners=False)
                outputs = {"input": x, **{k: net.to(device).eval()(x).clamp(0, 1) for k, net in nets.items()}}
                for which, y in outputs.items():
                    parts = module.losses(y, x)
                    rows.append({"sample": name, "weights": which, "style_loss": float(parts["style"]),
                                 "content_loss": float(parts["content"])})
                if len(strips) < examples:
                    strips.append((name, np.concatenate([to_uint8_hwc(outputs[k]) for k in
                                                         ("input", "start", "tuned")], 1)))
        return rows, strips


def load_start(manifest: TrainManifest) -> ModelWeights | None:
    """The verified weights a run starts from (in the driver, before any worker starts).

    Returns:
        ``None`` when the run starts from generated untrained weights.
    Raises:
        colorstyle_core.loader.WeightsError: not found, or the hash does not match.
    """
    spec = manifest.train
    if isinstance(spec, ColorizerTraining):
        if spec.untrained_init:
            return None
        name, ref, key_filter = spec.model, spec.init_weights, None
    elif isinstance(spec, StylizerTraining):
        if spec.untrained_vgg:
            return None
        name, ref, key_filter = spec.vgg, spec.vgg_weights, vgg_features_only
    else:
        raise ValueError(f"unknown training kind {spec.kind!r}")
    state_dict, resolved = loader.load_verified_state_dict(get_spec(name), manifest.weights_source(ref),
                                                           key_filter=key_filter)
    return ModelWeights.from_state_dict(name, state_dict, Provenance.from_resolved(name, resolved))


def check_start(manifest: TrainManifest, start: ModelWeights | None) -> None:
    """The starting weights' layout against the network the run trains, key by key and shape by shape (in the
    driver, on the meta device: no memory, no worker started), so a mismatch is one line before anything runs.

    Raises:
        colorstyle_core.loader.WeightsLayoutError: naming the weights file, the network the manifest chose
            and the keys or shapes that differ.
    """
    if start is None:
        return
    spec = manifest.train
    if isinstance(spec, ColorizerTraining):
        chosen, setting = spec.model, "train.model"
        with torch.device("meta"):
            net: nn.Module = build(spec.model)
    else:
        assert isinstance(spec, StylizerTraining)
        chosen, setting = spec.vgg, "train.vgg"
        contract = get_spec(spec.vgg).preprocess
        assert isinstance(contract, ImageNetContract)
        with torch.device("meta"):
            net = VGGFeatures(spec.vgg, contract)
    try:
        loader.load_strict(net, start.state_dict(), start.provenance.origin)
    except loader.WeightsLayoutError as e:
        raise loader.WeightsLayoutError(f"{e}; {setting} is {chosen}: are these weights for another network?"
                                        ) from None


def make_task(manifest: TrainManifest, start: ModelWeights | None,
              styles: Sequence[tuple[str, str, np.ndarray]] = ()) -> ColorizerTask | StylizerTask:
    """The task a manifest's ``train.kind`` names."""
    if manifest.train.kind == "colorizer":
        return ColorizerTask(manifest, start)
    if manifest.train.kind == "stylizer":
        return StylizerTask(manifest, start, [torch.from_numpy(np.array(a)).permute(2, 0, 1) for _, _, a in styles],
                            [(uri, digest) for uri, digest, _ in styles])
    raise ValueError(f"unknown training kind {manifest.train.kind!r}")
