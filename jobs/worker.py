"""What an actor does with a work unit: read, decode, run the frame pipeline, encode, write, time.

I/O and timing only: every model and every pixel operation is in
:class:`colorstyle_core.pipeline.FramePipeline`, every format in ``colorstyle_core``.
A :class:`UnitProcessor` is built once per actor (models loaded once) and then
processes units; it has no Ray dependency, so it also runs in plain tests.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from colorstyle_core import color, imageio, quality, storage
from colorstyle_core.encoders import h264_encoder
from colorstyle_core.hints import ColorHints, HintsError, Keyframe, keyframe_hints, keyframe_points, parse_hints
from colorstyle_core.keyframes import propagate
from colorstyle_core.pipeline import LARGE_IMAGE_PIXELS, FramePipeline, FrameResult, ModelWeights, PipelineConfig
from colorstyle_core.resample import band_as_float
from colorstyle_core.timing import Seconds, Stage, StageTimer, added, scaled
from colorstyle_core.video import SegmentWriter, VideoError, read_frames
from jobs.actor_threads import ComputeTurn, Overlap
from jobs.metrics import FailureRow, FrameRow, QualityRow
from jobs.progress import progress_key
from jobs.units import (
    ActorInfo,
    AssemblyResult,
    AssemblyTask,
    FrameRange,
    HintTrack,
    ImageItem,
    ImageShard,
    UnitResult,
    WorkUnit,
)

log = logging.getLogger(__name__)

PERMANENT_ERRORS = (VideoError, imageio.ImageDecodeError, HintsError)
"""Errors caused by the input itself: retrying cannot help."""

ENCODE_AHEAD = 2
"""Batches of processed frames that may wait for the encoder (memory bound of the overlap)."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything an actor needs to know about the job (frozen, shipped once).

    Attributes:
        job_id, run_id: the job and this run.
        pipeline: the frame pipeline's steps.
        untrained_seed: generated UNTRAINED weights with this seed (smoke runs), else ``None``.
        storage_options, output_storage_options: fsspec options for inputs and outputs.
        batch_size: frames per network batch.
        video_crf, video_preset: H.264 quality and x264 speed of the outputs.
        video_encoder: ``auto``, ``libx264`` or ``h264_nvenc`` (:func:`colorstyle_core.encoders.h264_encoder`).
        device: ``auto``, ``cpu``, ``cuda``, ...
        cpu_threads: the actor's CPU share (torch and encoder threads).
        measure_consistency: measure E_warp of every assembled video.
        reencode_videos: stage frame ranges losslessly and encode each video once at assembly.
        max_pixels: stills with more pixels are refused from their header, before decoding.
        precision: ``fp32``, ``bf16`` or ``fp16`` for the networks on CUDA (:func:`colorstyle_core.devices.autocast`).
        overlap_io: decode the next batch and encode the previous one on their own threads while the
            network runs (``False``: one after the other; ``"auto"``: on CUDA actors only).
        compile_colour: compile the per-pixel colour maths (``execution.compile_colour``).
    """

    job_id: str
    run_id: str
    pipeline: PipelineConfig
    untrained_seed: int | None
    storage_options: dict | None
    output_storage_options: dict | None
    batch_size: int
    video_crf: int
    video_preset: str
    video_encoder: str = "auto"
    device: str = "auto"
    cpu_threads: int = 1
    measure_consistency: bool = False
    reencode_videos: bool = False
    max_pixels: int | None = None
    precision: str = "fp32"
    overlap_io: bool | str = "auto"
    compile_colour: bool = False


HINT_TRACK_SCHEMA = pa.schema([
    ("frame", pa.int64()), ("y", pa.float32()), ("x", pa.float32()), ("a", pa.float32()), ("b", pa.float32()),
    ("weight", pa.float32()), ("keyframe", pa.int64()), ("patch", pa.int32()),
])
"""A video's keyframe hints carried through its shots: one row per hint point per frame."""


@dataclass
class _Written:
    """A frame on its way to a metrics row: the pipeline's result and the stages the worker added."""

    index: int
    result: FrameResult
    stages: Seconds
    batch_size: int
    hint_points: int | None = None


def reset_peak_rss() -> None:
    """Restart this process's peak-RSS counter (Linux ``clear_refs``; a no-op where unsupported)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's peak resident memory since :func:`reset_peak_rss` (or its start), MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _take(it: Iterator, n: int) -> list:
    out = []
    for item in it:
        out.append(item)
        if len(out) == n:
            break
    return out


def frame_tensor(rgb: np.ndarray) -> torch.Tensor:
    """A decoded ``(H, W, 3)`` uint8 video frame as ``(1, 3, H, W)`` float32 in ``[0, 1]``, contiguous
    (planar: the colour maths over whole frames runs about 1.3x faster, compiled 3x, than on interleaved pixels)."""
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()[None].float().div_(255.0)


class UnitProcessor:
    """Holds the frame pipeline of one actor and processes its work units.

    Args:
        spec: the job's worker settings.
        colorizer_weights, stylizer_weights: verified weights (``None`` for a step that
            is off, or when ``spec.untrained_seed`` asks for generated weights).
        actor: where this processor runs (for metrics rows).
    Raises:
        FileNotFoundError, imageio.ImageDecodeError: a style image cannot be read.
    """

    def __init__(self, spec: WorkerSpec, colorizer_weights: ModelWeights | None,
                 stylizer_weights: ModelWeights | None, actor: ActorInfo):
        self.spec = spec
        self.actor = actor
        style_step = spec.pipeline.stylize
        styles = [self._read_image(uri) for uri in style_step.styles] if style_step else []  # once per actor
        self.pipeline = FramePipeline.build(spec.pipeline, styles, colorizer_weights=colorizer_weights,
                                            stylizer_weights=stylizer_weights, untrained_seed=spec.untrained_seed,
                                            device=spec.device, precision=spec.precision,  # type: ignore[arg-type]
                                            compile_colour=spec.compile_colour)
        self.untrained = self.pipeline.untrained
        self.description = f"colorstyle job {spec.job_id}: {self.pipeline.weights_text}"
        cuda = self.pipeline.device.type == "cuda"
        self.overlap = spec.overlap_io if isinstance(spec.overlap_io, bool) else cuda
        self.encoder, note = h264_encoder(spec.video_encoder, cuda)
        if note:
            log.warning("%s", note)
        self.on_progress: Callable[[str, int], None] | None = None  # (unit attempt key, frames done so far)
        self._progress_key = ""
        self._turn = ComputeTurn()

    def _report(self, frames: int) -> None:
        if self.on_progress is not None:
            self.on_progress(self._progress_key, frames)

    def process(self, unit: WorkUnit, attempt: int, submitted_at: float) -> UnitResult:
        """Process one work unit; per-input problems come back as failure rows.

        Raises:
            VideoError: a frame range cannot be decoded (permanent: the video is bad).
            storage.StorageError, OSError: transient storage problems (the driver retries).
        """
        with self._turn.hold() as give_up:
            reset_peak_rss()
            self._progress_key = progress_key(unit.unit_id, attempt)
            if isinstance(unit, ImageShard):
                result = self.process_shard(unit, attempt, submitted_at)
            elif isinstance(unit, HintTrack):
                result = self.process_hints(unit, submitted_at)
            else:
                assert isinstance(unit, FrameRange)
                result = self.process_range(unit, attempt, submitted_at, give_up)
        return dataclasses.replace(result, peak_rss_mb=peak_rss_mb())

    # ---- shared steps --------------------------------------------------------------------

    def _read_image(self, uri: str) -> torch.Tensor:
        return imageio.to_tensor(imageio.decode_image(storage.read_bytes(uri, self.spec.storage_options), uri).pixels)

    def _timer(self) -> StageTimer:
        return self.pipeline.timer()

    def _failure(self, input_uri: str, unit_id: str, error: BaseException | str, message: str,
                 attempt: int) -> FailureRow:
        error_type = error if isinstance(error, str) else type(error).__name__
        return FailureRow(self.spec.job_id, self.spec.run_id, input_uri, unit_id, error_type, message, attempt)

    def _frame_row(self, unit: WorkUnit, input_uri: str, output_uri: str, frame: _Written, queue_wait: float,
                   started: float, colorized_uri: str | None = None) -> FrameRow:
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

    # ---- images --------------------------------------------------------------------------

    def _hints_for(self, item: ImageItem, image: torch.Tensor) -> ColorHints | None:
        """The still's hints (one keyframe, frame 0); sampled colours must exist at the image's own L."""
        if not item.hints_uri:
            return None
        text = storage.read_bytes(item.hints_uri, self.spec.storage_options).decode("utf-8")
        keyframes = parse_hints(text, item.hints_uri).keyframes
        if len(keyframes) > 1 or (keyframes and keyframes[0].frame != 0):
            raise HintsError(f"{item.hints_uri}: a still has one keyframe, frame 0; got frames "
                             f"{[k.frame for k in keyframes]}")
        if not keyframes:
            return None
        keyframe = keyframes[0]
        lightness = color.rgb_to_l(band_as_float(image, 0, image.shape[-2])) if keyframe.image else None
        return keyframe_hints(keyframe, *self._keyframe_images(keyframe), lightness=lightness)

    def _keyframe_images(self, keyframe: Keyframe) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(ab, mask)`` of a keyframe's colour image and mask (``None`` where it has none)."""
        ab = mask = None
        if keyframe.image:
            rgb = self._read_image(keyframe.image)
            ab = color.rgb_to_lab(rgb.expand(-1, 3, -1, -1) if rgb.shape[1] == 1 else rgb)[:, 1:]
        if keyframe.mask:
            mask = (self._read_image(keyframe.mask).amax(dim=1, keepdim=True) > 0).to(torch.float32)
        return ab, mask

    def _load(self, item: ImageItem, unit_id: str, attempt: int, failures: list[FailureRow]
              ) -> tuple[torch.Tensor, Seconds, ColorHints | None] | None:
        """Read and decode one image; a bad file (or one above ``max_pixels``) becomes a failure row (and ``None``)."""
        timer = self._timer()
        try:
            with timer(Stage.READ):
                data = storage.read_bytes(item.uri, self.spec.storage_options)
            with timer(Stage.DECODE):
                width, height = imageio.image_size(data, item.uri)
                large = width * height > LARGE_IMAGE_PIXELS
                decoded = imageio.decode_image(data, item.uri, self.spec.max_pixels, "execution.max_pixels",
                                               keep_uint8=large)
                del data
                image = imageio.to_tensor(decoded.pixels, copy=not large)
            with timer(Stage.READ):
                hints = self._hints_for(item, image)
        except (*PERMANENT_ERRORS, FileNotFoundError) as e:
            failures.append(self._failure(item.uri, unit_id, e, str(e), attempt))
            return None
        for note in decoded.notes:
            log.info("%s: %s", item.uri, note)
        return image, timer.take(), hints

    def process_shard(self, shard: ImageShard, attempt: int, submitted_at: float) -> UnitResult:
        """Images in batches of ``batch_size``: only one batch is decoded at a time (archival scans are big).

        Images above :data:`~colorstyle_core.pipeline.LARGE_IMAGE_PIXELS` are processed alone,
        in bands (:meth:`~colorstyle_core.pipeline.FramePipeline.process_large`), as soon as
        they are decoded, so at most one large scan is in memory.
        """
        started = time.time()
        queue_wait = max(0.0, started - submitted_at)
        rows: list[FrameRow] = []
        failures: list[FailureRow] = []
        quality_rows: list[QualityRow] = []

        def write(item: ImageItem, result: FrameResult, own: Seconds, batch: int) -> None:
            rows.append(self._write_image(shard, item, result, own, batch, attempt, queue_wait, started, failures,
                                          quality_rows))

        for chunk in _chunks(shard.items, self.spec.batch_size):
            group = []
            for item in chunk:
                loaded = self._load(item, shard.unit_id, attempt, failures)
                if loaded is None:
                    continue
                image, own, hints = loaded
                del loaded
                if image.shape[-1] * image.shape[-2] > LARGE_IMAGE_PIXELS:
                    result = self.pipeline.process_large(image, hints)
                    del image  # free the input before encoding the output
                    write(item, result, own, 1)
                    self._report(len(rows) + len(failures))
                else:
                    group.append((item, image, own, hints))
            if not group:
                continue
            hints = [h for _, _, _, h in group] if any(h for _, _, _, h in group) else None
            results = self.pipeline.process([t for _, t, _, _ in group], hints)
            for (item, _, own, _), result in zip(group, results):
                write(item, result, own, len(group))
            self._report(len(rows) + len(failures))
        return UnitResult(shard.unit_id, tuple(rows), tuple(failures), self.actor, started, time.time(),
                          quality=tuple(quality_rows))

    def _write_image(self, shard: ImageShard, item: ImageItem, result: FrameResult, own: Seconds, batch: int,
                     attempt: int, queue_wait: float, started: float, failures: list[FailureRow],
                     quality_rows: list[QualityRow]) -> FrameRow:
        """Encode and write one processed still (and its colorized copy, its comparison); its metrics row."""
        opts = self.spec.output_storage_options
        t = self._timer()
        with t(Stage.ENCODE):
            pixels = imageio.to_uint8_hwc(result.image)
            data = imageio.encode_image(pixels, item.output_uri, self.description)
            between = None
            if item.colorized_uri and result.colorized is not None:
                between = imageio.encode_image(imageio.to_uint8_hwc(result.colorized), item.colorized_uri,
                                               self.description)
        with t(Stage.WRITE):
            storage.write_bytes_atomic(item.output_uri, data, opts)
            if between is not None:
                storage.write_bytes_atomic(item.colorized_uri, between, opts)
        if item.reference_uri:
            with t(Stage.EVALUATE):
                row = self._compare(shard.unit_id, item, pixels, attempt, failures)
            if row is not None:
                quality_rows.append(row)
        written = _Written(0, result, added(own, result.stages, t.seconds), batch)
        return self._frame_row(shard, item.uri, item.output_uri, written, queue_wait, started,
                               item.colorized_uri if between is not None else None)

    def _compare(self, unit_id: str, item: ImageItem, pixels: np.ndarray, attempt: int,
                 failures: list[FailureRow]) -> QualityRow | None:
        """Quality of one output against its ground truth, with diff maps; problems become failure rows."""
        assert item.reference_uri is not None and item.diff_prefix is not None
        if pixels.shape[0] * pixels.shape[1] > LARGE_IMAGE_PIXELS:
            failures.append(self._failure(item.uri, unit_id, "ReferenceError", (
                f"{item.uri}: not compared with {item.reference_uri}: {pixels.shape[1]}x{pixels.shape[0]} is above "
                f"the {LARGE_IMAGE_PIXELS / 1e6:.0f} megapixels the quality metrics handle"), attempt))
            return None
        try:
            ref = imageio.decode_image(storage.read_bytes(item.reference_uri, self.spec.storage_options),
                                       item.reference_uri).pixels
            ref8 = imageio.to_uint8_hwc(imageio.to_tensor(ref).expand(-1, 3, -1, -1))
            if ref8.shape != pixels.shape:
                raise ValueError(f"{item.reference_uri}: ground truth is {ref8.shape[1]}x{ref8.shape[0]}, "
                                 f"the output {pixels.shape[1]}x{pixels.shape[0]}")
            got = quality.evaluate_pair(pixels, ref8)
            base = quality.evaluate_pair(quality.gray_baseline(ref8), ref8)
        except (imageio.ImageDecodeError, FileNotFoundError, ValueError) as e:
            failures.append(self._failure(item.uri, unit_id, "ReferenceError", str(e), attempt))
            return None
        abs_uri, clamped_uri = item.diff_prefix + ".abs.png", item.diff_prefix + ".clamped.png"
        for uri, diff in ((abs_uri, quality.abs_diff_map(pixels, ref8)),
                          (clamped_uri, quality.clamped_diff_map(pixels, ref8))):
            storage.write_bytes_atomic(uri, imageio.encode_image(diff, uri), self.spec.output_storage_options)
        return QualityRow(
            job_id=self.spec.job_id, run_id=self.spec.run_id, unit_id=unit_id, input_uri=item.uri,
            output_uri=item.output_uri, reference_uri=item.reference_uri,
            psnr=got.psnr, ssim=got.ssim, ab_error=got.ab_error,
            colorfulness_pred=got.colorfulness_pred, colorfulness_ref=got.colorfulness_ref,
            delta_colorfulness=got.delta_colorfulness,
            baseline_psnr=base.psnr, baseline_ssim=base.ssim, baseline_ab_error=base.ab_error,
            baseline_colorfulness=base.colorfulness_pred,
            abs_diff_uri=abs_uri, clamped_diff_uri=clamped_uri,
        )

    # ---- video ---------------------------------------------------------------------------

    def _processed(self, frames: Iterator, unit: FrameRange, timer: StageTimer,
                   decoder: Overlap) -> Iterator[_Written]:
        """Decoded frames, a batch at a time, through the pipeline's sequence for this range.

        The next batch is decoded on ``decoder``'s thread while the network works on this one
        (PyAV releases the GIL while it decodes), so at most two batches are decoded ahead.
        """
        sequence = self.pipeline.sequence(unit.handoff_start, unit.stop)
        with timer(Stage.READ):
            hints = self._range_hints(unit) if unit.hints else {}
        batch_size = self.spec.batch_size

        def decode_batch() -> tuple[list[tuple[int, torch.Tensor]], float]:
            start = time.perf_counter()
            batch = [(i, frame_tensor(rgb)) for i, rgb in _take(frames, batch_size)]
            return batch, time.perf_counter() - start

        pending = decoder.submit(decode_batch)
        while True:
            batch, decode_s = pending.result()
            if not batch:
                return
            pending = decoder.submit(decode_batch)  # overlaps with the network below
            if not self.overlap:
                pending.result()  # serial (for comparisons): decode finishes before the network starts
            decode = {Stage.DECODE: decode_s / len(batch)}
            frame_hints = [hints.get(i) for i, _ in batch] if hints else None
            results = sequence.process([i for i, _ in batch], torch.cat([t for _, t in batch]), frame_hints)
            for (index, _), result in zip(batch, results):
                count = len(hints[index].points) if index in hints else (0 if unit.hints else None)
                yield _Written(index, result, added(decode, result.stages), len(batch), count)

    def _range_hints(self, unit: FrameRange) -> dict[int, ColorHints]:
        """The hints of this range's frames: read from its video's carried hints; a keyframe with a colour
        image and a mask gives its dense hint on its own frame."""
        assert unit.hints is not None
        table = pq.read_table(io.BytesIO(storage.read_bytes(unit.hints.tracks_uri, self.spec.output_storage_options)))
        rows = table.filter(pc.and_(pc.greater_equal(table["frame"], unit.read_start),
                                    pc.less(table["frame"], unit.stop))).to_pylist()
        source = parse_hints(storage.read_bytes(unit.hints.source_uri, self.spec.storage_options).decode("utf-8"),
                             unit.hints.source_uri)
        by_frame: dict[int, list[dict]] = {}
        for r in rows:
            by_frame.setdefault(r["frame"], []).append(r)
        out = {}
        for frame, points in by_frame.items():
            out[frame] = ColorHints(points=tuple((r["y"], r["x"], r["a"], r["b"]) for r in points),
                                    patch=max(r["patch"] for r in points),
                                    weights=tuple(r["weight"] for r in points))
        for keyframe in source.keyframes:
            if keyframe.mask and unit.read_start <= keyframe.frame < unit.stop:
                out[keyframe.frame] = keyframe_hints(keyframe, *self._keyframe_images(keyframe))
        return out

    def process_hints(self, unit: HintTrack, submitted_at: float) -> UnitResult:
        """Carry a video's keyframe hints through its shots and write every frame's hints (Parquet) to staging.

        Raises:
            HintsError: keyframes labelled as one shot with a scene cut between them (permanent).
            VideoError: the video cannot be decoded.
        """
        started = time.time()
        opts = self.spec.storage_options
        source = parse_hints(storage.read_bytes(unit.hints.source_uri, opts).decode("utf-8"), unit.hints.source_uri)
        patches = {k.frame: k.patch for k in source.keyframes}

        def read(start: int, stop: int) -> Iterator[tuple[int, torch.Tensor]]:
            with storage.open_source(unit.video_uri, opts) as video:
                for index, rgb in read_frames(video, unit.info, start, stop, unit.video_uri):
                    yield index, color.rgb_to_l(frame_tensor(rgb))

        points = {k.frame: keyframe_points(k, *self._keyframe_images(k),
                                           lightness=next(read(k.frame, k.frame + 1))[1] if k.image else None)
                  for k in source.keyframes}  # colours sampled from a keyframe image must exist at the film's L

        carried = propagate(read, source.keyframes, unit.start, unit.stop, points_of=lambda k: points[k.frame],
                            cut_threshold=unit.cut_threshold, name=unit.hints.source_uri)
        rows = [{"frame": f, "y": h.y, "x": h.x, "a": h.a, "b": h.b, "weight": h.weight, "keyframe": h.keyframe,
                 "patch": patches[h.keyframe]} for f, hs in sorted(carried.hints.items()) for h in hs]
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=HINT_TRACK_SCHEMA), buf, compression="zstd")
        storage.write_bytes_atomic(unit.hints.tracks_uri, buf.getvalue(), self.spec.output_storage_options)
        log.info("%s: keyframes %s carried over %d frames (scene cuts at %s)", unit.video_uri,
                 [k.frame for k in source.keyframes], len(carried.hints), carried.cuts or "none")
        return UnitResult(unit.unit_id, (), (), self.actor, started, time.time())

    def process_range(self, unit: FrameRange, attempt: int, submitted_at: float,
                      give_up: Callable[[], None] = lambda: None) -> UnitResult:
        """Decode a frame range, process it, encode it into a staged segment, upload it.

        ``give_up`` hands the actor's compute turn to the next unit once the last frame is through
        the pipeline (with ``overlap_io``), before the encoder's flush and the upload.

        Raises:
            VideoError: the range cannot be decoded, or produced the wrong number of frames.
        """
        started = time.time()
        queue_wait = max(0.0, started - submitted_at)
        written: list[_Written] = []
        timer = self._timer()
        with tempfile.TemporaryDirectory(prefix="colorstyle-") as tmp:
            local_segment = os.path.join(tmp, "segment.mkv")
            opened = time.perf_counter()
            # decode, network and encode overlap: the executors sit inside the source and the writer, so
            # they have stopped (queued work cancelled on an error) before either is closed
            with storage.open_source(unit.video_uri, self.spec.storage_options) as source, \
                    Overlap("decode") as decoder:
                read_s = time.perf_counter() - opened
                frames = read_frames(source, unit.info, unit.read_start, unit.stop, unit.video_uri)
                with self._segment_writer(local_segment, unit) as writer, Overlap("encode") as encoder:

                    broken: list[BaseException] = []  # after a failed write the segment is lost: write no more

                    def encode(frame: _Written) -> None:  # on the encoder's thread, frames in order
                        if broken:
                            raise broken[0]
                        start = time.perf_counter()
                        try:
                            writer.write(imageio.to_uint8_hwc(frame.result.image), frame.index)
                        except BaseException as e:
                            broken.append(e)
                            raise
                        frame.stages = added(frame.stages, {Stage.ENCODE: time.perf_counter() - start})

                    in_flight: deque[Future] = deque()
                    for frame in self._processed(frames, unit, timer, decoder):
                        if frame.index < unit.write_start:
                            continue  # warm-up frame: its output belongs to the previous range
                        in_flight.append(encoder.submit(encode, frame))
                        written.append(frame)
                        ahead = ENCODE_AHEAD * self.spec.batch_size if self.overlap else 0
                        while len(in_flight) > ahead:  # bounded memory
                            in_flight.popleft().result()
                        if len(written) % self.spec.batch_size == 0:
                            self._report(len(written))
                    for future in in_flight:
                        future.result()  # raises the encoder's error, if any
                    encode_flush = time.perf_counter()
                    if self.overlap:
                        give_up()  # the next unit's network runs during this segment's flush and upload
            write_start = time.perf_counter()
            storage.copy_file_atomic(local_segment, unit.segment_uri, self.spec.output_storage_options)
            write_s = time.perf_counter() - write_start
        if len(written) != unit.frames:
            raise VideoError(f"{unit.video_uri}: range {unit.unit_id} produced {len(written)} frames, "
                             f"expected {unit.frames}")
        # opening the source, the segment's final flush and its upload: shared by its frames
        shared = scaled({Stage.READ: read_s, Stage.ENCODE: write_start - encode_flush, Stage.WRITE: write_s},
                        1.0 / max(1, len(written)))
        rows = tuple(self._frame_row(unit, unit.video_uri, unit.segment_uri,
                                     dataclasses.replace(f, stages=added(f.stages, shared)),
                                     queue_wait, started) for f in written)
        return UnitResult(unit.unit_id, rows, (), self.actor, started, time.time())

    def _segment_writer(self, path: str, unit: FrameRange) -> SegmentWriter:
        """The range's encoder: this actor's H.264 encoder, x264 when NVENC refuses a session (a GPU's
        concurrent-session limit; the assembly re-encodes a video whose ranges differ)."""
        options = {"crf": self.spec.video_crf, "preset": self.spec.video_preset, "threads": self.spec.cpu_threads,
                   "metadata": {"comment": self.description}, "intermediate": self.spec.reencode_videos}
        if self.encoder != "libx264" and not self.spec.reencode_videos:
            try:
                return SegmentWriter(path, unit.info, encoder=self.encoder, **options)
            except (av.error.FFmpegError, OSError) as e:
                log.warning("%s: %s did not open (%s): this range is encoded with libx264", unit.video_uri,
                            self.encoder, e)
        return SegmentWriter(path, unit.info, **options)

    def assemble(self, task: AssemblyTask) -> AssemblyResult:
        """Join a video's staged segments into its output (:func:`jobs.assembly.assemble_video`).

        Raises:
            VideoError: the segments do not hold the video's frames.
        """
        from jobs.assembly import assemble_video  # it builds on this module

        with self._turn.hold():
            return assemble_video(task, self.spec, self.description, self.encoder)
