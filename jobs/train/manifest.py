"""Training manifests: the same conventions as job manifests (typed, frozen, unknown keys refused with their line).

``train.kind`` says what is trained: ``colorizer`` fine-tunes ECCV16 or SIGGRAPH17 on an
archive's own colour material; ``stylizer`` trains a feed-forward network for one style
(or a blend). See ``manifests/train-*.yaml``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.colorizers.entry import Finetuning
from jobs.manifest_base import (
    InputSpec,
    ManifestBase,
    Model,
    WeightsRef,
    known_layers,
    no_dot_segments,
    parse_yaml,
    read_text,
)

FINETUNABLE = tuple(e.name for e in COLORIZERS if e.finetuning is not None)
"""The colorizers ``colorstyle train`` fine-tunes (their entries name their blocks)."""


class _Common(Model):
    """What every kind of training has.

    Attributes:
        data: colour images and videos to learn from (files, prefixes, globs, list files).
        output: where checkpoints, metrics and the validation table go.
        steps: optimiser steps in all (a resumed run ends at the same number).
        batch_size: samples per step over all workers (each worker takes its share).
        lr: Adam's learning rate.
        schedule: ``constant``, ``cosine`` (to 0 at the last step) or ``step`` (x0.1 at 2/3).
        warmup_steps: linear warm-up from 0.
        size: side of the square crops trained on, in pixels.
        validation: fraction of the files held out (whole files: never frames of a shot
            that is also trained on), at least one file when there are two or more.
        validation_data: the held-out files themselves (your test set), instead of a fraction;
            a file listed in both is held out.
        frames_per_video: frames sampled from each video, spread across the whole film.
        checkpoint_every: steps between checkpoints (resume points).
        seed: makes file split, sampling and initialisation reproducible.
    """

    data: list[InputSpec] = Field(min_length=1)
    output: str
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-5, gt=0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    size: int = Field(256, ge=32)
    validation: float = Field(0.1, ge=0, lt=1)
    validation_data: list[InputSpec] | None = None
    frames_per_video: int = Field(64, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0

    _output_is_plain = field_validator("output")(no_dot_segments)


def _finetuning(model: str) -> Finetuning:
    finetuning = COLORIZERS.get(model).finetuning
    assert finetuning is not None
    return finetuning


class ColorizerTraining(_Common):
    """Fine-tuning a Zhang et al. colorizer (see :mod:`colorstyle_core.training.colorize_loss`).

    Attributes:
        model: ``eccv16`` (classification, class rebalancing) or ``siggraph17`` (classification
            and regression heads, simulated hints).
        init_weights: the weights to start from (default: the published ones, through the loader).
        untrained_init: start from generated UNTRAINED weights instead (smoke runs, tests).
        train_blocks: the blocks that learn, by the authors' names; the others stay frozen.
            Default: ECCV16's last two, ``model7`` and ``model8`` (as the CS 6220 report did);
            SIGGRAPH17's decoder after its dilated blocks (``model8`` on, with the shortcuts
            and both heads: the classification loss reaches only ``model_class`` and what
            feeds it).
        weight_decay: Adam's L2 penalty (the authors used 1e-3).
    """

    kind: Literal["colorizer"]
    model: Literal[FINETUNABLE] = "eccv16"  # type: ignore[valid-type]
    init_weights: WeightsRef | None = None
    untrained_init: bool = False
    train_blocks: list[str] = Field(default_factory=lambda: list(_finetuning("eccv16").default_blocks), min_length=1)
    weight_decay: float = Field(1e-3, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_blocks(cls, data: Any) -> Any:
        if isinstance(data, dict) and "train_blocks" not in data and data.get("model") in FINETUNABLE:
            data = {**data, "train_blocks": list(_finetuning(data["model"]).default_blocks)}
        return data

    @model_validator(mode="after")
    def _known_blocks(self) -> ColorizerTraining:
        blocks = _finetuning(self.model).blocks
        unknown = sorted(set(self.train_blocks) - set(blocks))
        if unknown:
            raise ValueError(f"train_blocks {unknown} are not blocks of {self.model}; it has {', '.join(blocks)}")
        return self


class StylizerTraining(_Common):
    """Training a feed-forward stylizer (Johnson et al. 2016) with the Gatys losses.

    Attributes:
        styles: the style images (URIs).
        blend: one weight per style (default equal).
        vgg: the loss network; ``vgg_weights`` its checkpoint (default the published one).
        untrained_vgg: generated UNTRAINED VGG weights (smoke runs, tests).
        content_weight, style_weight, tv_weight: the loss weights (Gatys' losses as the
            stylizer defines them).
        content_layers, style_layers: VGG layers by name (defaults: Johnson et al.'s, on VGG16).
        channels: the transformation network's width (32 as Johnson et al.).
        temporal_weight: weight of a flow-warped consistency loss on consecutive frames of the
            training videos (Ruder et al. 2016; ReCoNet), so the network itself flickers less;
            0 = off. Each step adds ``batch_size / 2`` pairs (per worker's share) from the videos.
    """

    kind: Literal["stylizer"]
    styles: list[str] = Field(min_length=1)
    blend: list[float] | None = None
    vgg: Literal["vgg16", "vgg19"] = "vgg16"
    vgg_weights: WeightsRef | None = None
    untrained_vgg: bool = False
    content_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(1e5, ge=0)
    tv_weight: float = Field(1.0, ge=0)
    content_layers: list[str] = Field(default_factory=lambda: ["relu2_2"])
    style_layers: list[str] = Field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    channels: int = Field(32, ge=4)
    temporal_weight: float = Field(0.0, ge=0)
    lr: float = Field(1e-3, gt=0)
    schedule: Literal["constant", "cosine", "step"] = "constant"

    _layers_are_known = field_validator("content_layers", "style_layers")(known_layers)

    @model_validator(mode="after")
    def _blend_matches_styles(self) -> StylizerTraining:
        if self.blend is not None and len(self.blend) != len(self.styles):
            raise ValueError(f"blend has {len(self.blend)} weights for {len(self.styles)} styles")
        return self


class TrainExecution(Model):
    """How training is spread.

    Attributes:
        workers: data-parallel workers (Ray Train, one process each).
        gpus_per_worker: 1 per worker when the cluster has a GPU for every worker (``auto``), else CPU.
        cpus_per_worker: CPU cores per worker (its torch threads).
        max_failures: worker failures Ray Train recovers from (from the last checkpoint).
    """

    workers: int = Field(2, ge=1)
    gpus_per_worker: float | Literal["auto"] = "auto"
    cpus_per_worker: float = Field(1.0, gt=0)
    max_failures: int = Field(3, ge=0)


class TrainManifest(ManifestBase):
    """A whole training run."""

    version: Literal[1] = 1
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
    train: Annotated[ColorizerTraining | StylizerTraining, Field(discriminator="kind")]
    storage_options: dict[str, Any] | None = None
    execution: TrainExecution = TrainExecution()

    @property
    def run_name(self) -> str:
        """``name``, or one derived from what is trained (so rerunning the same manifest resumes it)."""
        return self.name or self.content_id("train", {"train"})


def parse_train_manifest(text: str, name: str = "train.yaml") -> TrainManifest:
    """Parse and validate a training manifest.

    Raises:
        jobs.manifest_base.ManifestError: every problem with its line.
    """
    return parse_yaml(text, name, TrainManifest, "train (and execution)")


def load_train_manifest(uri: str, storage_options: dict[str, Any] | None = None) -> TrainManifest:
    """Read and parse a training manifest (path or fsspec URI).

    Raises:
        jobs.manifest_base.ManifestError: unreadable or invalid.
    """
    return parse_train_manifest(read_text(uri, storage_options), uri)
