"""Assembly: a video's staged frame ranges joined, in order, into its output (audio kept).

Runs on an actor once every range of the video is done, then measures the output's warping
error when the job asks for it. An image sequence becomes an MP4 the same way (it has no
audio), or, kept as frames, has nothing to join: its ranges wrote its files, and its assembly
only measures them and records the film as done. I/O only: the joining itself is
:func:`colorstyle_core.segments.assemble`.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace

from colorstyle_core import storage
from colorstyle_core.imageio import frame_tensor
from colorstyle_core.segments import assemble
from colorstyle_core.sequences import input_frames, read_sequence
from colorstyle_core.video import probe, read_frames
from colorstyle_core.video_metrics import measure_consistency
from jobs.metrics.tables import ConsistencyFigures
from jobs.units.context import UnitContext
from jobs.units.frame_ranges import VideoPlan


@dataclass(frozen=True)
class AssemblyTask:
    """Join a video's segments into its output."""

    video: VideoPlan
    segment_uris: tuple[str, ...]


@dataclass(frozen=True)
class AssemblyResult:
    """What assembling a video produced (with its consistency figures when asked)."""

    video_key: str
    output_uri: str
    frames: int
    audio: str
    seconds: float
    consistency: ConsistencyFigures | None = None


def assemble_video(task: AssemblyTask, ctx: UnitContext) -> AssemblyResult:
    """Join a video's staged segments into its output, then remove the staging files.

    Args:
        task: the video and its segments, in frame order.
        ctx: the actor's settings (storage, encoder and its quality, consistency measurement, provenance tag).
    Raises:
        VideoError: the segments do not hold the video's frames.
    """
    start = time.perf_counter()
    spec = ctx.spec
    video = task.video
    suffix = ".gif" if video.info.is_gif else ".mp4"
    opts = spec.output_storage_options
    if video.as_frames:  # an image sequence kept as frames: its ranges wrote them; nothing to join
        consistency = _consistency(ctx, video, None) if spec.measure_consistency else None
        _remove_staging(video, opts)
        return AssemblyResult(video.key, video.output_uri, video.frames, "none", time.perf_counter() - start,
                              consistency)
    with tempfile.TemporaryDirectory(prefix="colorstyle-") as tmp:
        local_segments = []
        for i, uri in enumerate(task.segment_uris):
            if storage.is_local(uri):
                local_segments.append(uri.removeprefix("file://"))
                continue
            path = os.path.join(tmp, f"seg{i:05d}.mkv")
            fs, remote = storage.filesystem(uri, opts)
            fs.get_file(remote, path)
            local_segments.append(path)
        out_path = os.path.join(tmp, "output" + suffix)
        silent = video.info.is_gif or video.info.is_sequence
        audio = nullcontext(None) if silent else storage.open_source(video.uri, spec.storage_options)
        with audio as source:
            report = assemble(local_segments, video.info, list(range(video.start, video.stop)), out_path,
                              audio_source=source, name=video.uri,
                              metadata={"comment": ctx.description}, reencode=spec.reencode_videos,
                              crf=spec.video_crf, preset=spec.video_preset, encoder=ctx.encoder,
                              threads=spec.cpu_threads)
        storage.copy_file_atomic(out_path, video.output_uri, opts)
        consistency = _consistency(ctx, video, out_path) if spec.measure_consistency else None
    _remove_staging(video, opts)
    return AssemblyResult(video.key, video.output_uri, report.frames, report.audio, time.perf_counter() - start,
                          consistency)


def _remove_staging(video: VideoPlan, storage_options: dict | None) -> None:
    fs, staging = storage.filesystem(video.staging_prefix, storage_options)
    if fs.exists(staging):
        fs.rm(staging, recursive=True)


def _output_frames(video: VideoPlan, out_path: str | None, storage_options: dict | None):
    """The committed output's frames, in order: the local copy of the joined video, or (an image sequence kept as
    frames, ``out_path`` ``None``) its files under the output folder."""
    if out_path is not None:
        out_info = probe(out_path, video.output_uri)
        yield from read_frames(out_path, out_info, 0, out_info.frame_count, video.output_uri)
        return
    frames = tuple(storage.join_under(video.output_uri, storage.basename(video.info.frame_uri(i)))
                   for i in range(video.start, video.stop))
    written = replace(video.info.window(video.start, video.stop), frame_uris=frames)
    yield from read_sequence(written, video.start, video.stop, storage_options)


def _consistency(ctx: UnitContext, video: VideoPlan, out_path: str | None) -> ConsistencyFigures:
    """E_warp of the committed output against its input, overall and at range seams; CDC and colourfulness of
    both (from the same decoded frames)."""
    opts = ctx.spec.storage_options
    with input_frames(video.uri, video.info, video.start, video.stop, opts) as source:
        result = measure_consistency(
            (frame_tensor(rgb) for _, rgb in _output_frames(video, out_path, ctx.spec.output_storage_options)),
            (frame_tensor(rgb) for _, rgb in source),
            seams=[s - video.start for s in video.seams],
        )
    return ConsistencyFigures(result.e_warp, result.e_warp_seams, result.e_warp_inside, list(result.per_pair),
                              list(video.seams), [c + video.start for c in result.cuts], cdc=result.cdc,
                              cdc_without_cuts=result.cdc_without_cuts, colourfulness=result.colourfulness,
                              input_cdc=result.input_cdc, input_colourfulness=result.input_colourfulness)
