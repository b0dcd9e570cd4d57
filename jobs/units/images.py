"""Image shards: a few stills per work unit, and what an actor does with one.

Read, decode, colorize and stylize (the frame pipeline), encode, write atomically; with a
ground truth (``metrics.reference``), compare and write the diff maps. A bad file (missing,
not an image, above ``execution.max_pixels``, bad hints) becomes a failure row and the
shard goes on with the others.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from colorstyle_core import color, imageio, quality, storage
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.exemplar import Reference
from colorstyle_core.hints import ColorHints, HintsError, keyframe_hints, parse_hints
from colorstyle_core.pipeline_types import LARGE_IMAGE_PIXELS, FrameResult
from colorstyle_core.resample import band_as_float
from colorstyle_core.timing import Seconds, Stage, added
from jobs.metrics.tables import FailureRow, FrameRow, QualityRow
from jobs.units.base import PERMANENT_ERRORS, UnitResult
from jobs.units.context import UnitContext, Written

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageItem:
    """One image of an image set.

    Attributes:
        uri: input URI.
        rel: path relative to its input root; the output mirrors it.
        output_uri: where the result goes.
        hints_uri: its hints file, if any (SIGGRAPH17 points or a colour keyframe; deepexemplar: its reference).
        reference_uri: ground truth to compare the output with (``metrics.reference``).
        colorized_uri: where to keep the colorized result before stylization, if asked.
        diff_prefix: where to write this image's diff maps (with a reference).
    """

    uri: str
    rel: str
    output_uri: str
    hints_uri: str | None = None
    reference_uri: str | None = None
    colorized_uri: str | None = None
    diff_prefix: str | None = None


@dataclass(frozen=True)
class ImageShard:
    """A work unit of images."""

    unit_id: str
    items: tuple[ImageItem, ...]
    kind: ClassVar[str] = "image"

    @classmethod
    def of(cls, items: Sequence[ImageItem]) -> ImageShard:
        """The shard of ``items``, its id a digest of their input URIs (stable across runs)."""
        digest = hashlib.sha1("\n".join(i.uri for i in items).encode()).hexdigest()[:16]
        return cls(f"img-{digest}", tuple(items))

    def split(self) -> tuple[ImageShard, ...]:
        """One shard per image: to retry a failed shard so that one bad image cannot take the others with it."""
        return tuple(ImageShard.of([item]) for item in self.items)

    @property
    def frames(self) -> int:
        return len(self.items)

    @property
    def input_uris(self) -> tuple[str, ...]:
        return tuple(item.uri for item in self.items)

    @property
    def video_key(self) -> None:
        return None

    @property
    def after(self) -> None:
        return None


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class ImageShards:
    """The handler of image shards on one actor.

    Images go through the pipeline in batches of ``batch_size``: only one batch is decoded at a
    time (archival scans are big). Images above :data:`~colorstyle_core.pipeline_types.LARGE_IMAGE_PIXELS`
    are processed alone, in bands (:meth:`~colorstyle_core.pipeline.FramePipeline.process_large`), as soon
    as they are decoded, so at most one large scan is in memory.
    """

    def __init__(self, ctx: UnitContext):
        self.ctx = ctx

    def process(self, shard: ImageShard, attempt: int, submitted_at: float,
                give_up: Callable[[], None] = lambda: None) -> UnitResult:
        """Process every image of ``shard``; per-image problems come back as failure rows."""
        ctx = self.ctx
        started = time.time()
        queue_wait = max(0.0, started - submitted_at)
        rows: list[FrameRow] = []
        failures: list[FailureRow] = []
        quality_rows: list[QualityRow] = []

        def write(item: ImageItem, result: FrameResult, own: Seconds, batch: int) -> None:
            rows.append(self.write(shard, item, result, own, batch, attempt, queue_wait, started, failures,
                                   quality_rows))

        for chunk in _chunks(shard.items, ctx.spec.batch_size):
            group = []
            for item in chunk:
                loaded = self.load(item, shard.unit_id, attempt, failures)
                if loaded is None:
                    continue
                image, own, hints, reference = loaded
                del loaded
                if image.shape[-1] * image.shape[-2] > LARGE_IMAGE_PIXELS:
                    result = ctx.pipeline.process_large(image, hints, reference=reference)
                    del image  # free the input before encoding the output
                    write(item, result, own, 1)
                    ctx.report(len(rows) + len(failures))
                else:
                    group.append((item, image, own, hints, reference))
            if not group:
                continue
            hints = [g[3] for g in group] if any(g[3] for g in group) else None
            references = [g[4] for g in group] if any(g[4] for g in group) else None
            results = ctx.pipeline.process([g[1] for g in group], hints, references)
            for (item, _, own, _, _), result in zip(group, results):
                write(item, result, own, len(group))
            ctx.report(len(rows) + len(failures))
        return UnitResult(shard.unit_id, tuple(rows), tuple(failures), ctx.actor, started, time.time(),
                          quality=tuple(quality_rows))

    def reference_for(self, item: ImageItem, image: torch.Tensor) -> Reference | None:
        """``deepexemplar``: the still's reference, from its hints file (one keyframe, frame 0, with a ``reference``),
        or ``None`` for the job's.

        Raises:
            HintsError: a hints file of another kind, or neither it nor the job names a reference.
            imageio.ImageDecodeError: its reference does not decode.
        """
        ctx = self.ctx
        keyframes = self._keyframes(item, references=True)
        if keyframes:
            uri = keyframes[0].reference
            try:
                return ctx.exemplar_reference(uri)
            except FileNotFoundError:
                raise HintsError(f"{item.hints_uri}: reference {uri} does not exist") from None
        if ctx.spec.pipeline.colorize is None or not ctx.spec.pipeline.colorize.reference:
            raise HintsError(f"{item.uri}: no reference: give pipeline.colorize.reference, or a hints file naming one")
        return None

    def _keyframes(self, item: ImageItem, references: bool) -> tuple:
        """The still's keyframes (none, or one at frame 0) of the kind its model takes."""
        if not item.hints_uri:
            return ()
        text = storage.read_bytes(item.hints_uri, self.ctx.spec.storage_options).decode("utf-8")
        parsed = parse_hints(text, item.hints_uri)
        parsed.check_kind(references)
        keyframes = parsed.keyframes
        if len(keyframes) > 1 or (keyframes and keyframes[0].frame != 0):
            raise HintsError(f"{item.hints_uri}: a still has one keyframe, frame 0; got frames "
                             f"{[k.frame for k in keyframes]}")
        return keyframes

    def hints_for(self, item: ImageItem, image: torch.Tensor) -> ColorHints | None:
        """The still's hints (one keyframe, frame 0); sampled colours must exist at the image's own L."""
        keyframes = self._keyframes(item, references=False)
        if not keyframes:
            return None
        keyframe = keyframes[0]
        lightness = color.rgb_to_l(band_as_float(image, 0, image.shape[-2])) if keyframe.image else None
        return keyframe_hints(keyframe, *self.ctx.keyframe_images(keyframe), lightness=lightness)

    def load(self, item: ImageItem, unit_id: str, attempt: int, failures: list[FailureRow]
             ) -> tuple[torch.Tensor, Seconds, ColorHints | None, Reference | None] | None:
        """Read and decode one image, with its hints or reference; a bad file (or one above ``max_pixels``, bad hints,
        a reference that does not decode) becomes a failure row (and ``None``)."""
        ctx = self.ctx
        timer = ctx.timer()
        try:
            with timer(Stage.READ):
                data = storage.read_bytes(item.uri, ctx.spec.storage_options)
            with timer(Stage.DECODE):
                width, height = imageio.image_size(data, item.uri)
                large = width * height > LARGE_IMAGE_PIXELS
                decoded = imageio.decode_image(data, item.uri, ctx.spec.max_pixels, "execution.max_pixels",
                                               keep_uint8=large)
                del data
                image = imageio.to_tensor(decoded.pixels, copy=not large)
            with timer(Stage.READ):
                takes_reference = ctx.spec.pipeline.colorize is not None and \
                    COLORIZERS.get(ctx.spec.pipeline.colorize.model).takes_reference
                hints = None if takes_reference else self.hints_for(item, image)
                reference = self.reference_for(item, image) if takes_reference else None
        except (*PERMANENT_ERRORS, FileNotFoundError) as e:
            failures.append(ctx.failure(item.uri, unit_id, e, str(e), attempt))
            return None
        for note in decoded.notes:
            log.info("%s: %s", item.uri, note)
        return image, timer.take(), hints, reference

    def write(self, shard: ImageShard, item: ImageItem, result: FrameResult, own: Seconds, batch: int, attempt: int,
              queue_wait: float, started: float, failures: list[FailureRow], quality_rows: list[QualityRow]
              ) -> FrameRow:
        """Encode and write one processed still (and its colorized copy, its comparison); its metrics row."""
        ctx = self.ctx
        opts = ctx.spec.output_storage_options
        t = ctx.timer()
        with t(Stage.ENCODE):
            pixels = imageio.to_uint8_hwc(result.image)
            data = imageio.encode_image(pixels, item.output_uri, ctx.description)
            between = None
            if item.colorized_uri and result.colorized is not None:
                between = imageio.encode_image(imageio.to_uint8_hwc(result.colorized), item.colorized_uri,
                                               ctx.description)
        with t(Stage.WRITE):
            storage.write_bytes_atomic(item.output_uri, data, opts)
            if between is not None:
                storage.write_bytes_atomic(item.colorized_uri, between, opts)
        if item.reference_uri:
            with t(Stage.EVALUATE):
                row = self.compare(shard.unit_id, item, pixels, attempt, failures)
            if row is not None:
                quality_rows.append(row)
        written = Written(0, result, added(own, result.stages, t.seconds), batch)
        return ctx.frame_row(shard, item.uri, item.output_uri, written, queue_wait, started,
                             item.colorized_uri if between is not None else None)

    def compare(self, unit_id: str, item: ImageItem, pixels: np.ndarray, attempt: int,
                failures: list[FailureRow]) -> QualityRow | None:
        """Quality of one output against its ground truth, with diff maps; problems become failure rows."""
        assert item.reference_uri is not None and item.diff_prefix is not None
        ctx = self.ctx
        if pixels.shape[0] * pixels.shape[1] > LARGE_IMAGE_PIXELS:
            failures.append(ctx.failure(item.uri, unit_id, "ReferenceError", (
                f"{item.uri}: not compared with {item.reference_uri}: {pixels.shape[1]}x{pixels.shape[0]} is above "
                f"the {LARGE_IMAGE_PIXELS / 1e6:.0f} megapixels the quality metrics handle"), attempt))
            return None
        try:
            ref = imageio.decode_image(storage.read_bytes(item.reference_uri, ctx.spec.storage_options),
                                       item.reference_uri).pixels
            ref8 = imageio.to_uint8_hwc(imageio.to_tensor(ref).expand(-1, 3, -1, -1))
            if ref8.shape != pixels.shape:
                raise ValueError(f"{item.reference_uri}: ground truth is {ref8.shape[1]}x{ref8.shape[0]}, "
                                 f"the output {pixels.shape[1]}x{pixels.shape[0]}")
            got = quality.evaluate_pair(pixels, ref8)
            base = quality.evaluate_pair(quality.gray_baseline(ref8), ref8)
        except (imageio.ImageDecodeError, FileNotFoundError, ValueError) as e:
            failures.append(ctx.failure(item.uri, unit_id, "ReferenceError", str(e), attempt))
            return None
        abs_uri, clamped_uri = item.diff_prefix + ".abs.png", item.diff_prefix + ".clamped.png"
        for uri, diff in ((abs_uri, quality.abs_diff_map(pixels, ref8)),
                          (clamped_uri, quality.clamped_diff_map(pixels, ref8))):
            storage.write_bytes_atomic(uri, imageio.encode_image(diff, uri), ctx.spec.output_storage_options)
        return QualityRow(job_id=ctx.spec.job_id, run_id=ctx.spec.run_id, unit_id=unit_id, input_uri=item.uri,
                          output_uri=item.output_uri, reference_uri=item.reference_uri, output=got, baseline=base,
                          abs_diff_uri=abs_uri, clamped_diff_uri=clamped_uri)
