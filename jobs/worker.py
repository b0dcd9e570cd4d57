"""Processing one work unit: read -> decode -> colorize -> stylize -> encode -> write, timed.

Orchestration only: every model and every format lives in ``colorstyle_core``. A
:class:`UnitProcessor` is built once per actor (models loaded once) and then
processes units; it has no Ray dependency, so it also runs in plain tests.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from colorstyle_core import imageio, quality, storage
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.hints import ColorHints, HintsError, parse_points
from colorstyle_core.provenance import Provenance
from colorstyle_core.style.gatys import StyleConfig, Stylizer
from colorstyle_core.synthetic import UNTRAINED_NOTE, UNTRAINED_TAG
from colorstyle_core.temporal import (
    ABStabilizer,
    StepInfo,
    StyleChain,
    TemporalSettings,
    blend,
    handoff_weight,
    measure_consistency,
    resize_to,
)
from colorstyle_core.video import SegmentWriter, VideoError, assemble, read_frames
from jobs.manifest import ColorizeSpec, StylizeSpec
from jobs.metrics import STAGE_COLUMNS, Stage, StageTimer, failure_row
from jobs.units import ActorInfo, AssemblyResult, AssemblyTask, FrameRange, ImageItem, ImageShard, UnitResult

log = logging.getLogger(__name__)

PERMANENT_ERRORS = (VideoError, imageio.ImageDecodeError, HintsError)
"""Errors caused by the input itself: retrying cannot help."""


@dataclass(frozen=True)
class WeightsPayload:
    """Verified weights shipped from the driver to the actors (numpy arrays travel zero-copy)."""

    name: str
    arrays: dict[str, np.ndarray]
    provenance: Provenance

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.array(v)) for k, v in self.arrays.items()}  # copy: store arrays are read-only


@dataclass(frozen=True)
class WorkerSpec:
    """Everything an actor needs to know about the job (frozen, shipped once)."""

    job_id: str
    run_id: str
    colorize: ColorizeSpec | None
    stylize: StylizeSpec | None
    untrained_seed: int | None
    storage_options: dict | None
    output_storage_options: dict | None
    batch_size: int
    video_crf: int
    video_preset: str
    device: str = "auto"
    cpu_threads: int = 1
    chaos_kill_once: str | None = None
    color_temporal: TemporalSettings | None = None
    style_temporal: TemporalSettings | None = None
    measure_consistency: bool = False
    reencode_videos: bool = False


@dataclass
class _Chains:
    """The temporal state of one pass over a video: colour chain and (created lazily) style chain."""

    color: ABStabilizer | None
    style: StyleChain | None = None


@dataclass
class _Frame:
    """One processed frame on its way to the encoder."""

    index: int
    image: torch.Tensor  # (1, 3, H, W) float in [0, 1]
    curves: dict[str, list[float]]
    stages: dict[Stage, float]
    batch_size: int
    info: StepInfo | None = None
    perframe_diff: float | None = None


def _chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _ms(t: float) -> int:
    return int(t * 1000)


def resize_longer(image: torch.Tensor, longer: int) -> torch.Tensor:
    """``(N, C, H, W)`` resized (bicubic, anti-aliased) so its longer side is ``longer``; as is if 0 or larger."""
    h, w = image.shape[-2:]
    if not longer or longer >= max(h, w):
        return image
    s = longer / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


class UnitProcessor:
    """Holds the loaded models of one actor and processes its work units.

    Args:
        spec: the job's worker settings.
        colorizer_weights, stylizer_weights: verified weights (``None`` for a step that
            is off, or when ``spec.untrained_seed`` asks for generated weights).
        actor: where this processor runs (for metrics rows).
    """

    def __init__(self, spec: WorkerSpec, colorizer_weights: WeightsPayload | None,
                 stylizer_weights: WeightsPayload | None, actor: ActorInfo):
        self.spec = spec
        self.actor = actor
        self.colorizer: Colorizer | None = None
        self.stylizer: Stylizer | None = None
        self.style_config: StyleConfig | None = None
        self.styles: list[torch.Tensor] = []
        provenances: list[Provenance] = []
        if spec.colorize is not None:
            if spec.untrained_seed is not None:
                self.colorizer = Colorizer.from_weights(spec.colorize.model, device=spec.device,
                                                        gamut=spec.colorize.gamut, untrained_seed=spec.untrained_seed)
            else:
                assert colorizer_weights is not None
                self.colorizer = Colorizer.from_state_dict(spec.colorize.model, colorizer_weights.state_dict(),
                                                           colorizer_weights.provenance, device=spec.device,
                                                           gamut=spec.colorize.gamut)
            provenances.append(self.colorizer.provenance)
        if spec.stylize is not None:
            st = spec.stylize
            if spec.untrained_seed is not None:
                self.stylizer = Stylizer.from_weights(st.arch, device=spec.device, pooling=st.pooling,
                                                      untrained_seed=spec.untrained_seed)
            else:
                assert stylizer_weights is not None
                self.stylizer = Stylizer.from_state_dict(st.arch, stylizer_weights.state_dict(),
                                                         stylizer_weights.provenance, device=spec.device,
                                                         pooling=st.pooling)
            provenances.append(self.stylizer.provenance)
            self.style_config = st.config()
            self.styles = [self._read_image(uri)[0] for uri in st.styles]  # read once per actor
        self.provenances = tuple(provenances)
        self.untrained = any(p.untrained for p in provenances)
        self.weights_text = "; ".join(p.describe() for p in provenances)
        self.description = f"colorstyle job {spec.job_id}: {self.weights_text}" + (
            f" -- {UNTRAINED_NOTE}" if self.untrained else "")
        device = self.colorizer.device if self.colorizer else self.stylizer.device if self.stylizer else None
        self._timer_sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else None

    # ---- shared steps --------------------------------------------------------------------

    def _read_image(self, uri: str) -> tuple[torch.Tensor, imageio.DecodedImage]:
        decoded = imageio.decode_image(storage.read_bytes(uri, self.spec.storage_options), uri)
        return imageio.to_tensor(decoded.pixels), decoded

    def _transform(self, batch: list[torch.Tensor], hints: list[ColorHints | None] | None, timer: StageTimer
                   ) -> tuple[list[torch.Tensor], list[dict[str, list[float]]], list[torch.Tensor] | None]:
        """Colorize then stylize a batch of ``(1, C, H, W)`` images; same sizes stay batched.

        Returns the final images, the stylization loss curves, and the colorized images
        before stylization (``None`` unless both steps run).
        """
        with timer(Stage.PREPROCESS):
            dev = self.colorizer.device if self.colorizer else self.stylizer.device  # type: ignore[union-attr]
            batch = [b.to(dev) for b in batch]
        if self.colorizer is not None:
            with timer(Stage.COLORIZE):
                batch = [o[None] for o in self.colorizer.colorize_list([b[0] for b in batch], hints)]
        else:
            batch = [b.expand(-1, 3, -1, -1) if b.shape[1] == 1 else b for b in batch]
        curves: list[dict[str, list[float]]] = [{} for _ in batch]
        colorized = list(batch) if self.colorizer is not None and self.stylizer is not None else None
        if self.stylizer is not None:
            assert self.style_config is not None and self.spec.stylize is not None
            with timer(Stage.STYLIZE):
                by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
                for i, b in enumerate(batch):
                    by_size[tuple(b.shape[-2:])].append(i)
                out = list(batch)
                for (h, w), idx in by_size.items():
                    content = resize_longer(torch.cat([batch[i] for i in idx]), self.spec.stylize.size)
                    targets = self.stylizer.targets(self.styles, self.style_config, content,
                                                    key=tuple(self.spec.stylize.styles))
                    result = self.stylizer(content, targets, self.style_config)
                    images = result.images
                    if tuple(images.shape[-2:]) != (h, w):  # outputs keep the input's size
                        images = F.interpolate(images, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
                    for j, i in enumerate(idx):
                        out[i] = images[j : j + 1]
                        curves[i] = {k: v[:, j].tolist() for k, v in result.losses.items()}
                batch = out
        return batch, curves, colorized

    def _row(self, unit_id: str, kind: str, input_uri: str, output_uri: str, frame_index: int,
             image: torch.Tensor, batch_size: int, stages: dict[Stage, float], queue_wait: float,
             started: float, curves: dict[str, list[float]], info: StepInfo | None = None,
             perframe_diff: float | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "job_id": self.spec.job_id, "run_id": self.spec.run_id, "unit_id": unit_id, "kind": kind,
            "input_uri": input_uri, "output_uri": output_uri, "frame_index": frame_index,
            "actor": self.actor.name, "node": self.actor.hostname, "gpu_id": self.actor.gpu_id,
            "device": self.actor.device, "width": int(image.shape[-1]), "height": int(image.shape[-2]),
            "batch_size": batch_size,
            "weights": UNTRAINED_TAG + ": " + self.weights_text if self.untrained else self.weights_text,
            "untrained": self.untrained, "queue_wait_s": queue_wait, "started_at": _ms(started),
        }
        for stage in Stage:
            row[f"{stage.value}_s"] = stages.get(stage, 0.0)
        row["total_s"] = sum(row[c] for c in STAGE_COLUMNS)
        for name in ("total", "content", "style", "tv"):
            row[f"loss_{name}"] = curves.get(name, [])
        row["chain_reset"] = info.reset if info else None
        row["cut_score"] = info.cut_score if info else None
        row["flow_trusted"] = info.trusted if info else None
        row["perframe_diff"] = perframe_diff
        return row

    def _maybe_crash(self, unit_id: str) -> None:
        """Fault injection for resilience tests: die once, mid-unit, when asked (COLORSTYLE_CHAOS_KILL_ONCE)."""
        marker = self.spec.chaos_kill_once
        if marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(unit_id)
            log.warning("chaos: killing actor %s during %s", self.actor.name, unit_id)
            os._exit(137)

    # ---- images --------------------------------------------------------------------------

    def _hints_for(self, item: ImageItem) -> ColorHints | None:
        if not item.hints_uri:
            return None
        text = storage.read_bytes(item.hints_uri, self.spec.storage_options).decode("utf-8")
        return parse_points(text, item.hints_uri)

    def _load(self, item: ImageItem, unit_id: str, attempt: int, failures: list[dict[str, Any]]
              ) -> tuple[torch.Tensor, dict[Stage, float], ColorHints | None] | None:
        """Read and decode one image; a bad file becomes a failure row (and ``None``)."""
        timer = StageTimer(self._timer_sync)
        try:
            with timer(Stage.READ):
                data = storage.read_bytes(item.uri, self.spec.storage_options)
                hints = self._hints_for(item)
            with timer(Stage.DECODE):
                decoded = imageio.decode_image(data, item.uri)
        except (*PERMANENT_ERRORS, FileNotFoundError) as e:
            failures.append(failure_row(self.spec.job_id, self.spec.run_id, item.uri, unit_id, type(e).__name__,
                                        str(e), attempt))
            return None
        for note in decoded.notes:
            log.info("%s: %s", item.uri, note)
        return imageio.to_tensor(decoded.pixels), timer.take(), hints

    def process_shard(self, shard: ImageShard, attempt: int, submitted_at: float) -> UnitResult:
        """Images in batches of ``batch_size``: only one batch is decoded at a time (archival scans are big)."""
        started = time.time()
        queue_wait = max(0.0, started - submitted_at)
        rows: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        outputs: list[str] = []
        quality_rows: list[dict[str, Any]] = []
        for n, chunk in enumerate(_chunks(shard.items, self.spec.batch_size)):
            if n == 1:
                self._maybe_crash(shard.unit_id)  # fault injection: after a batch was already written
            group = [(item, *loaded) for item in chunk
                     if (loaded := self._load(item, shard.unit_id, attempt, failures)) is not None]
            if not group:
                continue
            timer = StageTimer(self._timer_sync)
            hints = [h for _, _, _, h in group] if any(h for _, _, _, h in group) else None
            images, curves, colorized = self._transform([t for _, t, _, _ in group], hints, timer)
            shared = {s: v / len(group) for s, v in timer.take().items()}  # batch stages, split evenly
            for k, ((item, _, own, _), image, curve) in enumerate(zip(group, images, curves)):
                t = StageTimer(self._timer_sync)
                with t(Stage.ENCODE):
                    pixels = imageio.to_uint8_hwc(image)
                    data = imageio.encode_image(pixels, item.output_uri, self.description)
                    between = None
                    if item.colorized_uri and colorized is not None:
                        between = imageio.encode_image(imageio.to_uint8_hwc(colorized[k]), item.colorized_uri,
                                                       self.description)
                with t(Stage.WRITE):
                    storage.write_bytes_atomic(item.output_uri, data, self.spec.output_storage_options)
                    if between is not None:
                        storage.write_bytes_atomic(item.colorized_uri, between, self.spec.output_storage_options)
                if item.reference_uri:
                    with t(Stage.EVALUATE):
                        row = self._compare(shard.unit_id, item, pixels, attempt, failures)
                    if row is not None:
                        quality_rows.append(row)
                stages = {s: own.get(s, 0.0) + shared.get(s, 0.0) + t.seconds[s] for s in Stage}
                row = self._row(shard.unit_id, "image", item.uri, item.output_uri, 0, image, len(group), stages,
                                queue_wait, started, curve)
                row["colorized_uri"] = item.colorized_uri if between is not None else None
                rows.append(row)
                outputs.append(item.output_uri)
        return UnitResult(shard.unit_id, tuple(rows), tuple(failures), tuple(outputs), self.actor, started,
                          time.time(), quality=tuple(quality_rows))

    def _compare(self, unit_id: str, item: ImageItem, pixels: np.ndarray, attempt: int,
                 failures: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Quality of one output against its ground truth, with diff maps; problems become failure rows."""
        assert item.reference_uri is not None and item.diff_prefix is not None
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
            failures.append(failure_row(self.spec.job_id, self.spec.run_id, item.uri, unit_id, "ReferenceError",
                                        str(e), attempt))
            return None
        abs_uri, clamped_uri = item.diff_prefix + ".abs.png", item.diff_prefix + ".clamped.png"
        for uri, diff in ((abs_uri, quality.abs_diff_map(pixels, ref8)),
                          (clamped_uri, quality.clamped_diff_map(pixels, ref8))):
            storage.write_bytes_atomic(uri, imageio.encode_image(diff, uri), self.spec.output_storage_options)
        return {
            "job_id": self.spec.job_id, "run_id": self.spec.run_id, "unit_id": unit_id, "input_uri": item.uri,
            "output_uri": item.output_uri, "reference_uri": item.reference_uri,
            "psnr": got.psnr, "ssim": got.ssim, "ab_error": got.ab_error,
            "colorfulness_pred": got.colorfulness_pred, "colorfulness_ref": got.colorfulness_ref,
            "delta_colorfulness": got.delta_colorfulness,
            "baseline_psnr": base.psnr, "baseline_ssim": base.ssim, "baseline_ab_error": base.ab_error,
            "baseline_colorfulness": base.colorfulness_pred,
            "abs_diff_uri": abs_uri, "clamped_diff_uri": clamped_uri,
        }

    # ---- video ---------------------------------------------------------------------------

    def _open_source(self, uri: str):
        if storage.is_local(uri):
            return uri.removeprefix("file://")
        fs, path = storage.filesystem(uri, self.spec.storage_options)
        return fs.open(path, "rb", block_size=8 << 20)

    def _batches(self, frames: Iterator, timer: StageTimer) -> Iterator[list[tuple[int, torch.Tensor]]]:
        """Decoded frames in batches of ``batch_size``: ``[(index, (1, 3, H, W) float32), ...]``."""
        while True:
            with timer(Stage.DECODE):
                batch = [(i, imageio.to_tensor(rgb.astype(np.float32) / 255.0))
                         for i, rgb in _take(frames, self.spec.batch_size)]
            if not batch:
                return
            yield batch

    def _plain_frames(self, frames: Iterator, timer: StageTimer) -> Iterator[_Frame]:
        """Per-frame processing: batches through the colorizer and the stylizer."""
        for batch in self._batches(frames, timer):
            own = timer.take()
            images, curves, _ = self._transform([t for _, t in batch], None, timer)
            shared = timer.take()
            for (index, _), image, curve in zip(batch, images, curves):
                stages = {s: (own[s] + shared[s]) / len(batch) for s in Stage}
                yield _Frame(index, image, curve, stages, len(batch))

    def _new_chains(self) -> _Chains:
        return _Chains(ABStabilizer(self.spec.color_temporal) if self.spec.color_temporal else None)

    def _chain_frame(self, chains: _Chains, lightness: torch.Tensor | None, ab_pred: torch.Tensor | None,
                     rgb_in: torch.Tensor, timer: StageTimer, measure: bool) -> tuple[
                         torch.Tensor | None, torch.Tensor, dict[str, list[float]], StepInfo | None, float | None]:
        """One frame through one pass's chains: ``(ab, rgb, loss curves, step info, per-frame diff)``."""
        info: StepInfo | None = None
        ab = None
        perframe_diff = None
        rgb = rgb_in
        if self.colorizer is not None:
            assert lightness is not None and ab_pred is not None
            ab = ab_pred
            if chains.color is not None:
                with timer(Stage.TEMPORAL):
                    ab, info = chains.color.step(lightness, ab_pred)
            with timer(Stage.COLORIZE):
                rgb = self.colorizer.compose(lightness, ab)
                if measure and chains.color is not None:
                    perframe_diff = float((rgb - self.colorizer.compose(lightness, ab_pred)).abs().mean())
        curves: dict[str, list[float]] = {}
        if self.stylizer is not None:
            assert self.style_config is not None and self.spec.stylize is not None
            h, w = rgb.shape[-2:]
            content = resize_longer(rgb, self.spec.stylize.size)
            key = tuple(self.spec.stylize.styles)
            if self.spec.style_temporal is not None:
                if chains.style is None:
                    targets = self.stylizer.targets(self.styles, self.style_config, content, key=key)
                    chains.style = StyleChain(self.stylizer, targets, self.style_config, self.spec.style_temporal)
                with timer(Stage.STYLIZE):
                    image, result, style_info = chains.style.step(content)
                timer.seconds[Stage.STYLIZE] -= style_info.seconds  # flow and masks are temporal work
                timer.seconds[Stage.TEMPORAL] += style_info.seconds
                info = style_info if info is None else info
            else:
                with timer(Stage.STYLIZE):
                    targets = self.stylizer.targets(self.styles, self.style_config, content, key=key)
                    result = self.stylizer(content, targets, self.style_config)
                    image = result.images
            curves = {k: v[:, 0].tolist() for k, v in result.losses.items()}
            rgb = resize_to(image, (h, w))
        return ab, rgb, curves, info, perframe_diff

    def _temporal_frames(self, frames: Iterator, unit: FrameRange, timer: StageTimer) -> Iterator[_Frame]:
        """Frames in order through the temporal chains; before a seam, also through the fresh
        chains the next unit starts with, cross-fading into them (:func:`handoff_weight`)."""
        main, fresh = self._new_chains(), None
        dev = self.colorizer.device if self.colorizer else self.stylizer.device  # type: ignore[union-attr]
        for batch in self._batches(frames, timer):
            with timer(Stage.PREPROCESS):
                x = torch.cat([t for _, t in batch]).to(dev)
            lightness = ab_pred = None
            with timer(Stage.COLORIZE):
                if self.colorizer is not None:
                    lightness, ab_pred = self.colorizer.predict_ab(x)
            rgb_in = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            base = timer.take()
            for j, (index, _) in enumerate(batch):
                if unit.handoff_start is not None and index == unit.handoff_start:
                    fresh = self._new_chains()
                t = StageTimer(self._timer_sync)
                sl = slice(j, j + 1)
                args = (None if lightness is None else lightness[sl], None if ab_pred is None else ab_pred[sl],
                        rgb_in[sl], t)
                ab, image, curves, info, diff = self._chain_frame(main, *args, measure=True)
                if fresh is not None:
                    assert unit.handoff_start is not None
                    weight = handoff_weight(index, unit.handoff_start, unit.stop)
                    ab_f, image_f, _, _, _ = self._chain_frame(fresh, *args, measure=False)
                    with t(Stage.TEMPORAL):
                        if self.stylizer is None and ab is not None and ab_f is not None:
                            image = self.colorizer.compose(lightness[sl], blend(ab, ab_f, weight))  # type: ignore
                        else:
                            image = blend(image, image_f, weight)
                stages = {s: base[s] / len(batch) + t.seconds[s] for s in Stage}
                yield _Frame(index, image, curves, stages, len(batch), info, diff)

    @property
    def temporal(self) -> bool:
        return self.spec.color_temporal is not None or self.spec.style_temporal is not None

    def process_range(self, unit: FrameRange, attempt: int, submitted_at: float) -> UnitResult:
        started = time.time()
        queue_wait = max(0.0, started - submitted_at)
        rows: list[dict[str, Any]] = []
        timer = StageTimer(self._timer_sync)
        with tempfile.TemporaryDirectory(prefix="colorstyle-") as tmp:
            local_segment = os.path.join(tmp, "segment.mkv")
            with timer(Stage.READ):
                source = self._open_source(unit.video_uri)
            read_s = timer.take()[Stage.READ]
            try:
                frames = read_frames(source, unit.info, unit.read_start, unit.stop, unit.video_uri)
                processed = self._temporal_frames(frames, unit, timer) if self.temporal \
                    else self._plain_frames(frames, timer)
                with SegmentWriter(local_segment, unit.info, crf=self.spec.video_crf, preset=self.spec.video_preset,
                                   metadata={"comment": self.description}, threads=self.spec.cpu_threads,
                                   intermediate=self.spec.reencode_videos) as writer:
                    for k, frame in enumerate(processed):
                        if k == 0:
                            self._maybe_crash(unit.unit_id)
                        if frame.index < unit.write_start:
                            continue  # warm-up frame: its output belongs to the previous range
                        t = StageTimer(self._timer_sync)
                        with t(Stage.ENCODE):
                            writer.write(imageio.to_uint8_hwc(frame.image), frame.index)
                        stages = {s: frame.stages[s] + t.seconds[s] for s in Stage}
                        rows.append(self._row(unit.unit_id, "video", unit.video_uri, unit.segment_uri, frame.index,
                                              frame.image, frame.batch_size, stages, queue_wait, started,
                                              frame.curves, frame.info, frame.perframe_diff))
                    encode_flush = time.perf_counter()
                write_start = time.perf_counter()
                storage.copy_file_atomic(local_segment, unit.segment_uri, self.spec.output_storage_options)
                write_s = time.perf_counter() - write_start
            finally:
                if not isinstance(source, str):
                    source.close()
        flush_s = write_start - encode_flush
        for row in rows:  # opening the source, the segment's final flush and upload: shared by its frames
            row["read_s"] += read_s / max(1, len(rows))
            row["encode_s"] += flush_s / max(1, len(rows))
            row["write_s"] += write_s / max(1, len(rows))
            row["total_s"] = sum(row[c] for c in STAGE_COLUMNS)
        if len(rows) != unit.frames:
            raise VideoError(f"{unit.video_uri}: range {unit.unit_id} produced {len(rows)} frames, "
                             f"expected {unit.frames}")
        return UnitResult(unit.unit_id, tuple(rows), (), (unit.segment_uri,), self.actor, started, time.time())

    def assemble(self, task: AssemblyTask) -> AssemblyResult:
        """Join a video's staged segments into its output, then remove the staging files."""
        start = time.perf_counter()
        video = task.video
        suffix = ".gif" if video.info.is_gif else ".mp4"
        with tempfile.TemporaryDirectory(prefix="colorstyle-") as tmp:
            local_segments = []
            for i, uri in enumerate(task.segment_uris):
                if storage.is_local(uri):
                    local_segments.append(uri.removeprefix("file://"))
                    continue
                path = os.path.join(tmp, f"seg{i:05d}.mkv")
                fs, remote = storage.filesystem(uri, self.spec.output_storage_options)
                fs.get_file(remote, path)
                local_segments.append(path)
            out_path = os.path.join(tmp, "output" + suffix)
            source = None if video.info.is_gif else self._open_source(video.uri)
            try:
                report = assemble(local_segments, video.info, list(range(video.start, video.stop)), out_path,
                                  audio_source=source, name=video.uri, metadata={"comment": self.description},
                                  reencode=self.spec.reencode_videos, crf=self.spec.video_crf,
                                  preset=self.spec.video_preset, threads=self.spec.cpu_threads)
            finally:
                if source is not None and not isinstance(source, str):
                    source.close()
            storage.copy_file_atomic(out_path, video.output_uri, self.spec.output_storage_options)
            consistency = self._consistency(video, out_path) if self.spec.measure_consistency else None
        fs, staging = storage.filesystem(video.staging_prefix, self.spec.output_storage_options)
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
        return AssemblyResult(video.key, video.output_uri, report.frames, report.audio, time.perf_counter() - start,
                              consistency)

    def _consistency(self, video, out_path: str) -> dict[str, Any]:
        """E_warp of the committed output against its input, overall and at range seams."""
        from colorstyle_core.video import probe

        out_info = probe(out_path, video.output_uri)
        source = self._open_source(video.uri)
        try:
            def tensors(frames):
                for _, rgb in frames:
                    yield imageio.to_tensor(rgb.astype(np.float32) / 255.0)

            result = measure_consistency(
                tensors(read_frames(out_path, out_info, 0, out_info.frame_count, video.output_uri)),
                tensors(read_frames(source, video.info, video.start, video.stop, video.uri)),
                seams=[s - video.start for s in video.seams],
            )
        finally:
            if not isinstance(source, str):
                source.close()
        return {"e_warp": result.e_warp, "e_warp_seams": result.e_warp_seams, "e_warp_inside": result.e_warp_inside,
                "e_warp_pairs": list(result.per_pair), "seams": list(video.seams),
                "scene_cuts": [c + video.start for c in result.cuts]}


def _take(it: Iterator, n: int) -> list:
    out = []
    for item in it:
        out.append(item)
        if len(out) == n:
            break
    return out
