"""What the handlers of one actor share: the job's settings, the models (loaded once), storage, timing.

Built once per actor (:meth:`UnitContext.build`); every unit kind's handler reads it. No Ray
here, so the handlers also run in plain tests and in the benchmark's in-process actor path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from colorstyle_core import color, imageio, storage
from colorstyle_core.encoders import h264_encoder
from colorstyle_core.exemplar import Reference
from colorstyle_core.hints import Keyframe
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import FrameResult, ModelWeights
from colorstyle_core.timing import Seconds, StageTimer
from jobs.actor_threads import ComputeTurn
from jobs.metrics.tables import FailureRow, FrameRow
from jobs.units.base import ActorInfo, WorkerSpec, WorkUnit

log = logging.getLogger(__name__)


@dataclass
class Written:
    """A frame on its way to a metrics row: the pipeline's result and the stages the handler added."""

    index: int
    result: FrameResult
    stages: Seconds
    batch_size: int
    hint_points: int | None = None


@dataclass
class UnitContext:
    """One actor's models and settings, shared by its unit handlers.

    Attributes:
        spec: the job's worker settings.
        pipeline: the frame pipeline (models loaded once).
        actor: where this actor runs (for metrics rows).
        description: the outputs' provenance tag (weights, UNTRAINED where it applies).
        encoder: this actor's H.264 encoder (NVENC where it opens on a GPU actor, else x264).
        overlap: decode and encode on their own threads beside the network (``spec.overlap_io``).
        on_progress: told ``(unit attempt key, frames done so far)`` a batch at a time, but not of the unit's
            last batch (its result says so): a shard of one batch costs no report.
        turn: whose turn it is at the models (an actor runs two calls at once).
    """

    spec: WorkerSpec
    pipeline: FramePipeline
    actor: ActorInfo
    description: str
    encoder: str
    overlap: bool
    on_progress: Callable[[str, int], None] | None = None
    turn: ComputeTurn = field(default_factory=ComputeTurn)
    progress_key: str = ""
    progress_total: int = 0

    @classmethod
    def build(cls, spec: WorkerSpec, colorizer_weights: ModelWeights | None, stylizer_weights: ModelWeights | None,
              actor: ActorInfo) -> UnitContext:
        """Load the models (once per actor) and choose the encoder.

        Raises:
            FileNotFoundError, imageio.ImageDecodeError: a style image or the colour reference cannot be read.
        """
        style_step, colorize_step = spec.pipeline.stylize, spec.pipeline.colorize
        styles = [read_image(uri, spec.storage_options) for uri in style_step.styles] if style_step else []
        reference = None
        if colorize_step is not None and colorize_step.reference:
            reference = rgb_array(read_image(colorize_step.reference, spec.storage_options))
        pipeline = FramePipeline.build(spec.pipeline, styles, colorizer_weights=colorizer_weights,
                                       stylizer_weights=stylizer_weights, untrained_seed=spec.untrained_seed,
                                       device=spec.device, precision=spec.precision,  # type: ignore[arg-type]
                                       compile_colour=spec.compile_colour, reference=reference)
        cuda = pipeline.device.type == "cuda"
        encoder, note = h264_encoder(spec.video_encoder, cuda)
        if note:
            log.warning("%s", note)
        return cls(spec, pipeline, actor, f"colorstyle job {spec.job_id}: {pipeline.weights_text}", encoder,
                   spec.overlap_io if isinstance(spec.overlap_io, bool) else cuda)

    @property
    def untrained(self) -> bool:
        return self.pipeline.untrained

    def report(self, frames: int) -> None:
        """Progress of the unit in hand: ``frames`` written so far."""
        if self.on_progress is not None and frames < self.progress_total:
            self.on_progress(self.progress_key, frames)

    def timer(self) -> StageTimer:
        return self.pipeline.timer()

    def exemplar_reference(self, uri: str | None) -> Reference | None:
        """``deepexemplar``: the prepared reference of ``uri`` (read once per actor), or ``None`` (the job's).

        Raises:
            FileNotFoundError, imageio.ImageDecodeError: the reference cannot be read.
        """
        if uri is None:
            return None
        return self.pipeline.colorizer.reference_for(uri, lambda: rgb_array(self.read_image(uri)))

    def read_image(self, uri: str) -> torch.Tensor:
        """An input-side image (style, keyframe, mask) as ``(1, C, H, W)`` float32 in ``[0, 1]``."""
        return read_image(uri, self.spec.storage_options)

    def keyframe_images(self, keyframe: Keyframe) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(ab, mask)`` of a keyframe's colour image and mask (``None`` where it has none)."""
        ab = mask = None
        if keyframe.image:
            rgb = self.read_image(keyframe.image)
            ab = color.rgb_to_lab(rgb.expand(-1, 3, -1, -1) if rgb.shape[1] == 1 else rgb)[:, 1:]
        if keyframe.mask:
            mask = (self.read_image(keyframe.mask).amax(dim=1, keepdim=True) > 0).to(torch.float32)
        return ab, mask

    def failure(self, input_uri: str, unit_id: str, error: BaseException | str, message: str,
                attempt: int) -> FailureRow:
        """A failure row of this job and run (``error``: the exception, or its type's name)."""
        error_type = error if isinstance(error, str) else type(error).__name__
        return FailureRow(self.spec.job_id, self.spec.run_id, input_uri, unit_id, error_type, message, attempt)

    def frame_row(self, unit: WorkUnit, input_uri: str, output_uri: str, frame: Written, queue_wait: float,
                  started: float, colorized_uri: str | None = None) -> FrameRow:
        """The metrics row of one written image or frame."""
        r = frame.result
        curves = r.curves
        return FrameRow(
            job_id=self.spec.job_id, run_id=self.spec.run_id, unit_id=unit.unit_id, kind=unit.kind,
            input_uri=input_uri, output_uri=output_uri, frame_index=frame.index, actor=self.actor.name,
            node=self.actor.hostname, gpu_id=self.actor.gpu_id, device=self.actor.device,
            width=int(r.image.shape[-1]), height=int(r.image.shape[-2]), batch_size=frame.batch_size,
            weights=self.pipeline.weights_tag, untrained=self.untrained, queue_wait_s=queue_wait,
            stages=frame.stages, started_at=int(started * 1000),
            loss_total=curves.get("total", []), loss_content=curves.get("content", []),
            loss_style=curves.get("style", []), loss_tv=curves.get("tv", []),
            chain_reset=r.info.reset if r.info else None, cut_score=r.info.cut_score if r.info else None,
            flow_trusted=r.info.trusted if r.info else None, perframe_diff=r.perframe_diff,
            colorized_uri=colorized_uri, hint_points=frame.hint_points,
        )


def rgb_array(image: torch.Tensor) -> np.ndarray:
    """A ``(1, C, H, W)`` float32 image in ``[0, 1]`` (C = 1 or 3) as an ``(H, W, 3)`` float32 array (a reference)."""
    return image[0].expand(3, -1, -1).permute(1, 2, 0).float().contiguous().numpy()


def read_image(uri: str, storage_options: dict | None) -> torch.Tensor:
    """An image file (any fsspec URI) as ``(1, C, H, W)`` float32 in ``[0, 1]``.

    Raises:
        FileNotFoundError, imageio.ImageDecodeError: missing or not an image.
    """
    return imageio.to_tensor(imageio.decode_image(storage.read_bytes(uri, storage_options), uri).pixels)
