"""From a manifest to work units, as a stream: list inputs (fsspec), probe videos, cut shards and frame ranges.

:func:`plan_stream` yields work units while the inputs are still being listed, so the first
units of an archive of a million stills start within seconds; nothing in it holds more than a
shard of images, and videos are probed beside the listing. A film is probed from its header
and index where they give every frame (MP4, MOV: a few MB, whatever its length;
:func:`colorstyle_core.video.probe_index`), otherwise by the ``prober`` it is given (the driver's
probes as Ray tasks on the cluster, so no film is read in full by the driver). :func:`plan_job`
collects a stream into a :class:`Plan` (dry runs, ``validate``, the benchmarks, tests).

The cutting functions are pure and table-tested. Bad inputs become problems (failure rows),
never a stop.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from colorstyle_core import storage
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.cuts import DEFAULT_CUT_THRESHOLD
from colorstyle_core.hints import HintsError, HintsFile, check_keyframes, parse_hints
from colorstyle_core.imageio import IMAGE_SUFFIXES, ImageDecodeError, decode_image, image_size
from colorstyle_core.sequences import probe_sequence
from colorstyle_core.video import VideoError, VideoInfo, probe, probe_header, probe_index
from jobs.listing import InputFile, InputProblem, digest, iter_files
from jobs.manifest import Manifest
from jobs.manifest_base import SEQUENCE_FPS
from jobs.paths import output_uri_for, staging_root, stem, under
from jobs.resume import DoneState
from jobs.units.frame_ranges import FrameRange, VideoPlan
from jobs.units.hint_tracks import HintTrack, VideoHintsRef
from jobs.units.images import ImageItem, ImageShard

Prober = Callable[[InputFile], "VideoInfo | InputProblem"]
"""Probes one video exactly (every frame's timestamp), or says why it cannot."""


@dataclass(frozen=True)
class ProbeNeeded:
    """A film whose header does not give every frame (MKV, AVI, MPEG, WebM, GIF): to be probed where reading it in
    full costs the driver nothing (the scheduler sends :func:`probe_or_problem` to the cluster as a Ray task).

    Attributes:
        file: the video.
        expand: its plan once probed: ``expand(info or problem)`` yields its :class:`VideoPlan`, hint track and ranges.
    """

    file: InputFile
    expand: Callable[[VideoInfo | InputProblem], Iterator[PlanItem]]


PlanItem = ImageShard | HintTrack | FrameRange | VideoPlan | InputProblem | ProbeNeeded
"""What a plan stream yields: units, a video (before its units), a film to probe, or a problem of an input."""

PROBE_THREADS = 8
"""Films whose headers are read at once beside the listing (I/O bound)."""

HEADER_BLOCK = 256 << 10
"""Read size for a film's header and index: the demuxer's small reads are gathered into requests of 256 KB (a 2-hour
film's MP4 index is 1-3 MB), instead of the 8 MB blocks that decoding a range reads."""


@dataclass
class Tally:
    """What a plan stream has seen so far (complete once the stream is exhausted).

    Attributes:
        inputs_found: input files listed.
        skipped_images, skipped_videos: finished by an earlier run.
        problems: inputs that cannot be processed.
        ignored: files skipped during listing (other suffixes): the first :data:`IGNORED_SHOWN`.
        ignored_count: all of them.
        frames, units: frames and work units yielded (a film probed on the cluster adds its own once probed).
        probes: films without an index, yielded as :class:`ProbeNeeded`.
        listing_done: the stream is exhausted.
    """

    inputs_found: int = 0
    skipped_images: int = 0
    skipped_videos: int = 0
    problems: int = 0
    ignored: list[str] = field(default_factory=list)
    ignored_count: int = 0
    frames: int = 0
    units: int = 0
    probes: int = 0
    listing_done: bool = False

    @property
    def frames_to_do(self) -> int:
        """Frames of the units yielded (all of the run's, once the stream is exhausted)."""
        return self.frames


@dataclass(frozen=True)
class Plan:
    """Everything a run will do (a collected :func:`plan_stream`).

    Attributes:
        job_id: the job.
        shards: image work units still to do.
        videos: videos not yet assembled.
        ranges: frame-range units still to do.
        problems: inputs that cannot be processed.
        inputs_found: number of input files listed.
        skipped_images, skipped_videos: finished by an earlier run.
        ignored: files skipped during listing (other suffixes), with a reason.
        tracks: videos whose keyframe hints are carried through their shots before their ranges run.
    """

    job_id: str
    shards: tuple[ImageShard, ...]
    videos: tuple[VideoPlan, ...]
    ranges: tuple[FrameRange, ...]
    problems: tuple[InputProblem, ...]
    inputs_found: int
    skipped_images: int = 0
    skipped_videos: int = 0
    ignored: tuple[str, ...] = ()
    tracks: tuple[HintTrack, ...] = ()

    @property
    def frames_to_do(self) -> int:
        return sum(s.frames for s in self.shards) + sum(r.frames for r in self.ranges)


# ---- pure cutting --------------------------------------------------------------------------


def split_shards(items: Sequence, per_shard: int) -> list[tuple]:
    """Cut ``items`` into consecutive groups of ``per_shard`` (the last may be smaller).

    Raises:
        ValueError: if ``per_shard < 1``.
    """
    if per_shard < 1:
        raise ValueError("per_shard must be >= 1")
    return [tuple(items[i : i + per_shard]) for i in range(0, len(items), per_shard)]


def split_ranges(start: int, stop: int, per_range: int, overlap: int = 0) -> list[tuple[int, int, int]]:
    """Cut frames ``[start, stop)`` into ranges of ``per_range`` written frames.

    Returns ``(read_start, write_start, stop)`` per range: written parts tile
    ``[start, stop)`` exactly (no gap, no overlap); each range after the first also
    reads up to ``overlap`` frames before its written part (never before ``start``).

    Raises:
        ValueError: for ``per_range < 1``, ``overlap < 0`` or ``stop < start``.
    """
    if per_range < 1 or overlap < 0 or stop < start:
        raise ValueError(f"bad range request: [{start}, {stop}) per {per_range}, overlap {overlap}")
    out = []
    for write_start in range(start, stop, per_range):
        out.append((max(start, write_start - overlap), write_start, min(write_start + per_range, stop)))
    return out


def _digest(text: str, n: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def video_key(uri: str) -> str:
    """Stable short id of a video input."""
    return _digest(uri, 12)


def range_id(key: str, write_start: int, stop: int) -> str:
    return f"vid-{key}-{write_start:07d}-{stop:07d}"


# ---- probing -------------------------------------------------------------------------------


def probe_video(uri: str, storage_options) -> VideoInfo:
    """Every frame's timestamp of a video on any fsspec URI: from its header and index where they have them
    (:func:`colorstyle_core.video.probe_index`), else by demuxing it (:func:`colorstyle_core.video.probe`).

    Raises:
        VideoError: not a readable video.
    """
    with storage.open_source(uri, storage_options) as source:
        info = probe_index(source, uri)
    if info is not None:
        return info
    with storage.open_source(uri, storage_options) as source:
        return probe(source, uri)


def probe_or_problem(f: InputFile, storage_options) -> VideoInfo | InputProblem:
    """:func:`probe_video`, a bad video as a problem (a failure row) instead of an error."""
    try:
        return probe_video(f.uri, storage_options)
    except Exception as e:  # noqa: BLE001 -- whatever stops one video is that video's problem
        return video_problem(f, e)


def video_problem(f: InputFile, error: BaseException) -> InputProblem:
    """The failure row of a video that cannot be probed (missing, not a video, unreadable)."""
    if isinstance(error, FileNotFoundError):
        return InputProblem(f.uri, "MissingInput", f"{f.uri}: no such file")
    if isinstance(error, VideoError):
        return InputProblem(f.uri, "VideoError", str(error))
    return InputProblem(f.uri, "ReadError", f"{f.uri}: {error}")


def sequence_or_problem(f: InputFile, storage_options) -> VideoInfo | InputProblem:
    """An image sequence listed as a film (:func:`colorstyle_core.sequences.probe_sequence`), or its problem."""
    try:
        return probe_sequence(f.uri, f.fps or SEQUENCE_FPS, storage_options)
    except Exception as e:  # noqa: BLE001 -- whatever stops one sequence is that sequence's problem
        if isinstance(e, FileNotFoundError):
            return InputProblem(f.uri, "MissingInput", f"{f.uri}: no such folder of frames")
        return video_problem(f, e)


def index_or_none(f: InputFile, storage_options) -> VideoInfo | InputProblem | None:
    """A film's exact timestamps from its header and index (a few MB), its problem, or ``None`` (it has no index)."""
    try:
        with storage.open_source(f.uri, storage_options, block_size=HEADER_BLOCK) as source:
            return probe_index(source, f.uri)
    except Exception as e:  # noqa: BLE001 -- whatever stops one video is that video's problem
        return video_problem(f, e)


def header_estimate(f: InputFile, storage_options) -> VideoInfo | InputProblem:
    """A film's frames as its header states them (dry runs: a few MB, :func:`colorstyle_core.video.probe_header`)."""
    try:
        with storage.open_source(f.uri, storage_options, block_size=HEADER_BLOCK) as source:
            return probe_header(source, f.uri)
    except Exception as e:  # noqa: BLE001
        return video_problem(f, e)


# ---- planning ------------------------------------------------------------------------------


def plan_stream(manifest: Manifest, done: DoneState | None = None, *, prober: Prober | None = None,
                tally: Tally | None = None) -> Iterator[PlanItem]:
    """The work of a run, yielded while the inputs are listed: image shards as soon as a shard is full, each video
    (a :class:`VideoPlan`, then its hint track and ranges) as soon as it is probed, problems as they are found.

    Args:
        manifest: the job (its temporal settings give the warm-up overlap of frame ranges).
        done: what earlier runs finished (default: nothing); finished work is skipped and counted.
        prober: probes a film whose header does not give every frame (in this process: tests, benchmarks;
            :func:`header_estimate` for dry runs); ``None`` yields a :class:`ProbeNeeded` for it instead (the
            driver: the scheduler probes it on the cluster).
        tally: filled in as the stream goes.
    Raises:
        storage.StorageError: an input cannot be listed at all (credentials, connection).
    """
    done = done or DoneState()
    tally = tally if tally is not None else Tally()
    ex = manifest.execution
    colorize = manifest.pipeline.colorize
    hints = _files_under(colorize.hints if colorize else None, manifest, ".json", "hint file")
    references = {stem(rel): uri for rel, uri in _files_under(manifest.metrics.reference, manifest, IMAGE_SUFFIXES,
                                                                "ground truth").items()}
    outputs: dict[int, str] = {}  # hash of an output URI -> the input that claimed it
    problems: list[InputProblem] = list(hints.pop(None, ())) + list(references.pop(None, ()))  # type: ignore
    images: list[ImageItem] = []
    pending: list[tuple[InputFile, Future]] = []

    def claim(f: InputFile, out: str) -> InputProblem | None:
        h = digest(out)
        if h in outputs:
            return InputProblem(f.uri, "OutputCollision", f"{f.uri}: its output {out} is already the output of "
                                f"{outputs[h]}")
        outputs[h] = f.uri
        return None

    def shard(final: bool) -> Iterator[ImageShard]:
        while len(images) >= ex.images_per_shard or (final and images):
            group = images[: ex.images_per_shard]
            del images[: ex.images_per_shard]
            tally.units += 1
            tally.frames += len(group)
            yield ImageShard.of(group)

    def problem(p: InputProblem) -> InputProblem:
        tally.problems += 1
        return p

    def expand(f: InputFile) -> Callable[[VideoInfo | InputProblem], Iterator[PlanItem]]:
        return lambda result: _video_items(manifest, done, f, result, hints, claim, tally)

    def videos_ready(wait: bool) -> Iterator[PlanItem]:
        while pending and (wait or pending[0][1].done()):
            f, future = pending.pop(0)
            result = future.result()
            if result is None:  # no index: probed where it costs the driver nothing, or by the given prober
                if prober is None:
                    tally.probes += 1
                    yield ProbeNeeded(f, expand(f))
                    continue
                result = prober(f)
            yield from expand(f)(result)

    with ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="probe") as pool:
        for p in problems:
            yield problem(p)
        for f in iter_files(manifest.inputs, manifest.storage_options, manifest.output.prefix,
                            manifest.output_storage_options, tally):
            if isinstance(f, InputProblem):
                yield problem(f)
                continue
            tally.inputs_found += 1
            if f.kind in ("video", "sequence"):
                if video_key(f.uri) in done.videos:  # assembled by an earlier run: not even its header is read
                    tally.skipped_videos += 1
                    try:  # its suffix from its own name
                        collision = claim(f, _video_output(manifest, f))
                    except storage.UnsafePathError:
                        collision = None
                    if collision is not None:
                        yield problem(collision)
                else:
                    probe_fn = sequence_or_problem if f.kind == "sequence" else index_or_none
                    pending.append((f, pool.submit(probe_fn, f, manifest.storage_options)))
            else:
                item = _image_item(manifest, f, hints, references)
                if isinstance(item, InputProblem):
                    yield problem(item)
                elif (collision := claim(f, item.output_uri)) is not None:
                    yield problem(collision)
                elif item.uri in done.images:
                    tally.skipped_images += 1
                else:
                    images.append(item)
                    yield from shard(final=False)
            yield from videos_ready(wait=len(pending) >= 4 * PROBE_THREADS)
        yield from shard(final=True)
        yield from videos_ready(wait=True)
    tally.listing_done = True


def _image_item(manifest: Manifest, f: InputFile, hints: dict, references: dict) -> ImageItem | InputProblem:
    both_steps = manifest.pipeline.colorize is not None and manifest.pipeline.stylize is not None
    try:
        out = output_uri_for(manifest.output.prefix, manifest.output.image_format, f.rel, "image")
        rel_stem = stem(f.rel)
        reference = references.get(rel_stem)
        colorized = under(manifest.metrics_prefix, "colorized", rel_stem + ".jpg") \
            if manifest.output.save_colorized and both_steps else None
        diffs = under(manifest.metrics_prefix, "diffs", rel_stem) if reference else None
    except storage.UnsafePathError as e:
        return InputProblem(f.uri, "UnsafePath", f"{f.uri}: {e}; nothing is written for it")
    return ImageItem(f.uri, f.rel, out, hints.get(rel_stem + ".json"), reference_uri=reference,
                     colorized_uri=colorized, diff_prefix=diffs)


def _video_items(manifest: Manifest, done: DoneState, f: InputFile, result: VideoInfo | InputProblem, hints: dict,
                 claim: Callable[[InputFile, str], InputProblem | None], tally: Tally) -> Iterator[PlanItem]:
    """A probed video: its :class:`VideoPlan`, hint track and frame ranges still to do (or its problem)."""
    if isinstance(result, InputProblem):
        tally.problems += 1
        yield result
        return
    info = result
    start, stop = 0, info.frame_count
    if f.frames is not None:
        start, end = f.frames
        stop = info.frame_count if end is None else end
        if start >= info.frame_count or stop > info.frame_count:
            tally.problems += 1
            yield InputProblem(f.uri, "FrameRangeError", f"{f.uri}: frames [{start}, {stop}) go beyond the video's "
                               f"{info.frame_count} frames")
            return
    try:
        out = _video_output(manifest, f, info.is_gif)
    except storage.UnsafePathError as e:
        tally.problems += 1
        yield InputProblem(f.uri, "UnsafePath", f"{f.uri}: {e}; nothing is written for it")
        return
    if (collision := claim(f, out)) is not None:
        tally.problems += 1
        yield collision
        return
    key = video_key(f.uri)
    job_id = manifest.resolved_job_id
    video_staging = under(staging_root(manifest.output.prefix, job_id), key)
    colour = manifest.pipeline.colorize
    cut_threshold = colour.temporal.scene_cut_threshold if colour and colour.temporal else DEFAULT_CUT_THRESHOLD
    hints_uri = hints.get(f.rel + ".json") or hints.get(stem(f.rel) + ".json")
    ref = None
    track = None
    references: tuple[tuple[int, str], ...] = ()
    takes_reference = colour is not None and COLORIZERS.get(colour.model).takes_reference
    if takes_reference and hints_uri is None and not colour.reference:
        tally.problems += 1
        yield InputProblem(f.uri, "HintsError", f"{f.uri}: no reference: give pipeline.colorize.reference, or a "
                           f"hints file {f.rel}.json naming a reference per keyframe")
        return
    if hints_uri is not None:
        problem, parsed = _check_video_hints(hints_uri, manifest, info, start, stop, f.uri)
        if problem is not None:
            tally.problems += 1
            yield problem
            return
        # the track carries keyframe hints through their shots, or (deepexemplar) finds the scene cuts that end
        # each reference keyframe's reach; the ranges wait for it
        ref = VideoHintsRef(hints_uri, under(video_staging, "hints.parquet"), f"hints-{key}")
        if ref.track_unit_id not in done.ranges:
            track = HintTrack(ref.track_unit_id, key, f.uri, info, start, stop, ref, cut_threshold)
        if takes_reference:  # the ranges take each frame's reference from the keyframes and the track's cuts
            references = tuple((k.frame, k.reference) for k in parsed.keyframes if k.reference)
            hints_uri = None
            if not colour.reference and references[0][0] > start:
                tally.problems += 1
                yield InputProblem(f.uri, "HintsError", f"{f.uri}: frames {start}-{references[0][0] - 1} have no "
                                   "reference: the first reference keyframe of its hints file must be at the first "
                                   "frame processed, or give pipeline.colorize.reference")
                return
    overlap = manifest.pipeline.overlap
    as_frames = info.is_sequence and manifest.output.sequence_as == "frames"
    cuts = split_ranges(start, stop, manifest.execution.frames_per_range, overlap)
    ids = tuple(range_id(key, w, s) for _, w, s in cuts)
    yield VideoPlan(key, f.uri, f.rel, out, info, start, stop, ids, video_staging,
                    seams=tuple(w for _, w, _ in cuts[1:]), hints_uri=hints_uri, as_frames=as_frames)
    if track is not None:
        tally.units += 1
        yield track
    for k, ((read_start, write_start, s), uid) in enumerate(zip(cuts, ids)):
        if uid in done.ranges:
            continue
        handoff = cuts[k + 1][0] if k + 1 < len(cuts) and overlap else None  # the next range's warm-up start
        tally.units += 1
        tally.frames += s - write_start
        yield FrameRange(uid, key, f.uri, read_start, write_start, s, info.window(read_start, s),
                         under(video_staging, f"{uid}.mkv"), handoff_start=handoff, hints=ref, references=references,
                         frames_to=out if as_frames else None)


def _video_output(manifest: Manifest, f: InputFile, is_gif: bool = False) -> str:
    """A film's output: ``<rel>.mp4`` (``.gif`` for a GIF), an image sequence's folder ``<rel>`` (frames kept as
    frames) or ``<rel>.mp4`` (``output.sequence_as: mp4``).

    Raises:
        storage.UnsafePathError: the output would leave the prefix.
    """
    if f.kind == "sequence":
        return under(manifest.output.prefix, f.rel + (".mp4" if manifest.output.sequence_as == "mp4" else ""))
    return output_uri_for(manifest.output.prefix, manifest.output.image_format, f.rel, "video", is_gif=is_gif)


def plan_job(manifest: Manifest, done: DoneState | None = None, *, prober: Prober | None = None) -> Plan:
    """:func:`plan_stream` collected: everything a run will do (dry runs, ``validate``, benchmarks, tests).

    Args:
        prober: for films without an index (default: :func:`probe_or_problem`, exact, in this process).
    Raises:
        storage.StorageError: an input cannot be listed at all.
    """
    tally = Tally()
    shards, videos, ranges, tracks, problems = [], [], [], [], []
    prober = prober or (lambda f: probe_or_problem(f, manifest.storage_options))
    for item in plan_stream(manifest, done, prober=prober, tally=tally):
        {ImageShard: shards, VideoPlan: videos, FrameRange: ranges, HintTrack: tracks,
         InputProblem: problems}[type(item)].append(item)
    return Plan(manifest.resolved_job_id, tuple(shards), tuple(videos), tuple(ranges), tuple(problems),
                tally.inputs_found, tally.skipped_images, tally.skipped_videos, tuple(tally.ignored), tuple(tracks))


def _check_video_hints(uri: str, manifest: Manifest, info: VideoInfo, start: int, stop: int,
                       video: str) -> tuple[InputProblem | None, HintsFile | None]:
    """Read and check a video's hints file before any work: ``(problem naming the file and the entry, or None;
    the parsed file)``. A ``deepexemplar`` job's file names references, each of which must decode."""
    opts = manifest.storage_options
    colour = manifest.pipeline.colorize
    try:
        parsed = parse_hints(storage.read_bytes(uri, opts).decode("utf-8"), uri)
        parsed.check_kind(references=colour is not None and COLORIZERS.get(colour.model).takes_reference)
        sizes = {}
        for keyframe in parsed.keyframes:
            for image in (keyframe.image, keyframe.mask):
                if image and image not in sizes:
                    sizes[image] = image_size(storage.read_bytes(image, opts), image)
            if keyframe.reference:
                try:
                    decode_image(storage.read_bytes(keyframe.reference, opts), keyframe.reference)
                except (ImageDecodeError, FileNotFoundError) as e:
                    raise HintsError(f"{parsed.where(keyframe)}: reference {keyframe.reference}: {e}") from None
        check_keyframes(parsed, (start, stop), (info.width, info.height), sizes)
    except (HintsError, ImageDecodeError, FileNotFoundError, UnicodeDecodeError) as e:
        return InputProblem(video, "HintsError", f"{video}: hints {uri}: {e}" if uri not in str(e) else str(e)), None
    if not parsed.keyframes:
        return InputProblem(video, "HintsError", f"{uri}: no keyframes"), None
    return None, parsed


def _files_under(prefix: str | None, manifest: Manifest, suffixes: str | tuple[str, ...], what: str) -> dict:
    """``{path relative to prefix: URI}`` of the files with ``suffixes`` under ``prefix`` (hints, ground truth).

    A file whose relative path leaves ``prefix`` (``..`` in an object key) is left out, its problem listed
    under the key ``None``; a missing prefix gives an empty mapping.

    Raises:
        storage.StorageError: the prefix cannot be listed (credentials, connection).
    """
    if not prefix:
        return {}
    fs, root = storage.filesystem(prefix, manifest.storage_options)
    try:
        with storage.errors(prefix, "list"):
            found = sorted(fs.find(root))
    except FileNotFoundError:
        return {}
    base = root.rstrip("/")
    out: dict = {}
    for p in found:
        if not p.lower().endswith(suffixes):
            continue
        rel = posixpath.relpath(p, base)
        uri = storage.unstrip(fs, p)
        try:
            storage.join_under("root", rel)
        except storage.UnsafePathError:
            out.setdefault(None, []).append(InputProblem(uri, "UnsafePath", f"{uri}: {what} whose path relative to "
                                                         f"{prefix} ({rel!r}) leaves it; ignored"))
            continue
        out[rel] = uri
    return out

