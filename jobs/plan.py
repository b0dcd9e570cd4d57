"""From a manifest to work units: list inputs (fsspec), probe videos, cut shards and frame ranges.

The cutting functions are pure and table-tested. Everything here runs in the driver
process, before any actor starts, and records bad inputs as problems instead of
stopping.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fsspec.core import has_magic  # the glob test fsspec itself uses

from colorstyle_core import storage
from colorstyle_core.cuts import DEFAULT_CUT_THRESHOLD
from colorstyle_core.hints import HintsError, check_keyframes, parse_hints
from colorstyle_core.imageio import IMAGE_SUFFIXES, ImageDecodeError, image_size
from colorstyle_core.video import VIDEO_SUFFIXES, VideoError, VideoInfo, probe
from jobs.manifest import InputSpec, Manifest
from jobs.paths import CONTROL_DIR, output_uri_for, staging_root, stem, suffix, under
from jobs.resume import DoneState
from jobs.units.frame_ranges import FrameRange, VideoPlan
from jobs.units.hint_tracks import HintTrack, VideoHintsRef
from jobs.units.images import ImageItem, ImageShard


@dataclass(frozen=True)
class InputProblem:
    """An input that cannot be processed, and why (becomes a failures-table row)."""

    input_uri: str
    error_type: str
    message: str


@dataclass(frozen=True)
class InputFile:
    """A listed input file."""

    uri: str
    rel: str
    kind: str  # "image" or "video"
    frames: tuple[int, int | None] | None = None


@dataclass(frozen=True)
class Plan:
    """Everything a run will do.

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


# ---- listing -------------------------------------------------------------------------------


def _kind(path: str) -> str | None:
    ext = suffix(path)
    if ext in VIDEO_SUFFIXES:
        return "video"
    if ext in IMAGE_SUFFIXES:
        return "image"
    return None


def _escapes(rel: str) -> bool:
    """Whether a relative path climbs out of its root once normalised (or is absolute)."""
    try:
        storage.join_under("root", rel)
    except storage.UnsafePathError:
        return True
    return False


def _glob_base(path: str) -> str:
    parts = path.split("/")
    for i, part in enumerate(parts):
        if has_magic(part):
            return "/".join(parts[:i])
    return posixpath.dirname(path)


def list_inputs(manifest: Manifest) -> tuple[list[InputFile], list[InputProblem], list[str]]:
    """List every input file of a job manifest (:func:`list_files` of its inputs, its output excluded)."""
    return list_files(manifest.inputs, manifest.storage_options, manifest.output.prefix,
                      manifest.output_storage_options)


def list_files(inputs: Sequence[InputSpec], storage_options: dict | None, output: str,
               output_storage_options: dict | None = None) -> tuple[list[InputFile], list[InputProblem], list[str]]:
    """List the image and video files that input entries name (files, prefixes, globs, list files).

    Args:
        inputs: the entries (a job's ``inputs``, a training run's ``data``).
        output: a prefix whose files are never listed (what colorstyle writes is not read back in).
    Raises:
        storage.StorageError: an input cannot be listed at all (credentials, connection):
            a problem of the whole job, not of one input.

    Returns:
        ``(files, problems, ignored)``: files with their relative paths (sorted, no
        duplicates, nothing under the output prefix), problems (missing prefix, empty
        glob, unknown suffix, unreadable list file), and ignored files (other suffixes
        found while listing a prefix or glob).
    """
    opts = storage_options
    out_fs, out_path = storage.filesystem(output, output_storage_options if output_storage_options is not None
                                          else storage_options)
    out_root = out_path.rstrip("/") + "/"
    files: dict[str, InputFile] = {}
    problems: list[InputProblem] = []
    ignored: list[str] = []

    def add(fs, path: str, rel: str, spec: InputSpec, explicit: bool) -> None:
        uri = storage.unstrip(fs, path)
        if (path.rstrip("/") + "/").startswith(out_root) and type(fs) is type(out_fs):
            return  # never read our own outputs back in
        if f"/{CONTROL_DIR}/" in f"/{rel}":
            return
        if _escapes(rel):
            problems.append(InputProblem(uri, "UnsafePath", f"{uri}: its path relative to its input root, {rel!r}, "
                                         "leaves that root (\"..\" segments); nothing is written for it"))
            return
        kind = _kind(path)
        if kind is None:
            if explicit:
                problems.append(InputProblem(uri, "UnsupportedInput",
                                             f"{uri}: not an image or video suffix ({suffix(path) or 'none'})"))
            else:
                ignored.append(uri)
            return
        frames = (spec.frames.start, spec.frames.end) if spec.frames else None
        files.setdefault(uri, InputFile(uri, rel, kind, frames))

    for spec in inputs:
        if spec.list is not None:
            _list_file(spec, opts, add, problems)
            continue
        assert spec.uri is not None
        try:
            with storage.errors(spec.uri, "list"):
                fs, path = storage.filesystem(spec.uri, opts)
                if has_magic(path):
                    base = _glob_base(path)
                    matches = [p for p in sorted(fs.glob(path)) if fs.isfile(p)]
                    if not matches:
                        problems.append(InputProblem(spec.uri, "EmptyInput", f"{spec.uri}: the glob matched no files"))
                    for p in matches:
                        add(fs, p, posixpath.relpath(p, base) if base else p, spec, explicit=False)
                elif fs.isdir(path):
                    matches = sorted(fs.find(path))
                    if not matches:
                        problems.append(InputProblem(spec.uri, "EmptyInput", f"{spec.uri}: the prefix holds no files"))
                    for p in matches:
                        add(fs, p, posixpath.relpath(p, path.rstrip("/")), spec, explicit=False)
                elif fs.isfile(path):
                    add(fs, path, posixpath.basename(path), spec, explicit=True)
                else:
                    problems.append(InputProblem(spec.uri, "MissingInput", f"{spec.uri}: no such file or prefix"))
        except FileNotFoundError as e:
            problems.append(InputProblem(spec.uri, "MissingInput", f"{spec.uri}: cannot list ({e})"))
    return sorted(files.values(), key=lambda f: f.uri), problems, ignored


def _list_file(spec: InputSpec, opts, add, problems: list[InputProblem]) -> None:
    assert spec.list is not None
    try:
        text = storage.read_bytes(spec.list, opts).decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError) as e:
        problems.append(InputProblem(spec.list, "MissingInput", f"{spec.list}: cannot read list file ({e})"))
        return
    list_dir = spec.list.rsplit("/", 1)[0] if "/" in spec.list else "."
    entries = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not entries:
        problems.append(InputProblem(spec.list, "EmptyInput", f"{spec.list}: the list file names no inputs"))
        return
    resolved = [e if "://" in e or e.startswith("/") else storage.join(list_dir, e) for e in entries]
    pairs = [storage.filesystem(uri, opts) for uri in resolved]
    paths = [p for _, p in pairs]
    try:
        common = posixpath.commonpath([posixpath.dirname(p) for p in paths])
    except ValueError:  # mixed absolute/relative (different filesystems): keep full paths
        common = ""
    for uri, (fs, path) in zip(resolved, pairs):
        with storage.errors(uri, "check"):
            exists = fs.isfile(path)
        if not exists:
            problems.append(InputProblem(uri, "MissingInput", f"{uri} (listed in {spec.list}): no such file"))
            continue
        add(fs, path, posixpath.relpath(path, common) if common else path, spec, explicit=True)


# ---- planning ------------------------------------------------------------------------------


def probe_video(uri: str, storage_options) -> VideoInfo:
    """:func:`colorstyle_core.video.probe` on any fsspec URI (streams; no full download)."""
    with storage.open_source(uri, storage_options) as source:
        return probe(source, uri)


def plan_job(manifest: Manifest, done: DoneState | None = None, *, workers: int = 8) -> Plan:
    """List, probe and cut the manifest's inputs into work units, skipping finished work.

    Args:
        manifest: the job (its temporal settings give the warm-up overlap of frame ranges).
        done: what earlier runs finished (default: nothing).
        workers: threads for probing videos (I/O bound).
    """
    done = done or DoneState()
    job_id = manifest.resolved_job_id
    files, problems, ignored = list_inputs(manifest)
    ex = manifest.execution
    overlap = manifest.pipeline.overlap
    by_output: dict[str, str] = {}

    def claim(f: InputFile, out: str) -> bool:
        if out in by_output:
            problems.append(InputProblem(f.uri, "OutputCollision",
                                         f"{f.uri}: its output {out} is already the output of {by_output[out]}"))
            return False
        by_output[out] = f.uri
        return True

    hints = _files_under(manifest.pipeline.colorize.hints if manifest.pipeline.colorize else None, manifest,
                         ".json", problems, "hint file")
    references = {stem(rel): uri for rel, uri in _files_under(manifest.metrics.reference, manifest, IMAGE_SUFFIXES,
                                                                problems, "ground truth").items()}
    both_steps = manifest.pipeline.colorize is not None and manifest.pipeline.stylize is not None
    images: list[ImageItem] = []
    skipped_images = 0
    for f in (f for f in files if f.kind == "image"):
        try:
            out = output_uri_for(manifest.output.prefix, manifest.output.image_format, f.rel, "image")
            rel_stem = stem(f.rel)
            reference = references.get(rel_stem)
            colorized = under(manifest.metrics_prefix, "colorized", rel_stem + ".jpg") \
                if manifest.output.save_colorized and both_steps else None
            diffs = under(manifest.metrics_prefix, "diffs", rel_stem) if reference else None
        except storage.UnsafePathError as e:
            problems.append(InputProblem(f.uri, "UnsafePath", f"{f.uri}: {e}; nothing is written for it"))
            continue
        if not claim(f, out):
            continue
        if f.uri in done.images:
            skipped_images += 1
            continue
        images.append(ImageItem(f.uri, f.rel, out, hints.get(rel_stem + ".json"), reference_uri=reference,
                                colorized_uri=colorized, diff_prefix=diffs))
    shards = tuple(ImageShard.of(group) for group in split_shards(images, ex.images_per_shard))

    video_files = [f for f in files if f.kind == "video"]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(video_files)))) as pool:
        probed = list(pool.map(lambda f: _probe_or_problem(f, manifest), video_files))
    videos: list[VideoPlan] = []
    ranges: list[FrameRange] = []
    tracks: list[HintTrack] = []
    skipped_videos = 0
    staging = staging_root(manifest.output.prefix, job_id)
    colour = manifest.pipeline.colorize
    cut_threshold = colour.temporal.scene_cut_threshold if colour and colour.temporal else DEFAULT_CUT_THRESHOLD
    for f, result in zip(video_files, probed):
        if isinstance(result, InputProblem):
            problems.append(result)
            continue
        info = result
        start, stop = 0, info.frame_count
        if f.frames is not None:
            start, end = f.frames
            stop = info.frame_count if end is None else end
            if start >= info.frame_count or stop > info.frame_count:
                problems.append(InputProblem(f.uri, "FrameRangeError",
                                             f"{f.uri}: frames [{start}, {stop}) go beyond the video's "
                                             f"{info.frame_count} frames"))
                continue
        try:
            out = output_uri_for(manifest.output.prefix, manifest.output.image_format, f.rel, "video",
                                 is_gif=info.is_gif)
        except storage.UnsafePathError as e:
            problems.append(InputProblem(f.uri, "UnsafePath", f"{f.uri}: {e}; nothing is written for it"))
            continue
        if not claim(f, out):
            continue
        key = video_key(f.uri)
        if key in done.videos:
            skipped_videos += 1
            continue
        video_staging = under(staging, key)
        hints_uri = hints.get(f.rel + ".json") or hints.get(stem(f.rel) + ".json")
        ref = None
        if hints_uri is not None:
            problem = _check_video_hints(hints_uri, manifest, info, start, stop, f.uri)
            if problem is not None:
                problems.append(problem)
                continue
            ref = VideoHintsRef(hints_uri, under(video_staging, "hints.parquet"), f"hints-{key}")
            if ref.track_unit_id not in done.ranges:
                tracks.append(HintTrack(ref.track_unit_id, key, f.uri, info, start, stop, ref, cut_threshold))
        cuts = split_ranges(start, stop, ex.frames_per_range, overlap)
        ids = tuple(range_id(key, w, s) for _, w, s in cuts)
        videos.append(VideoPlan(key, f.uri, f.rel, out, info, start, stop, ids, video_staging,
                                seams=tuple(w for _, w, _ in cuts[1:]), hints_uri=hints_uri))
        for k, ((read_start, write_start, s), uid) in enumerate(zip(cuts, ids)):
            if uid in done.ranges:
                continue
            handoff = cuts[k + 1][0] if k + 1 < len(cuts) and overlap else None  # the next range's warm-up start
            ranges.append(FrameRange(uid, key, f.uri, read_start, write_start, s, info.window(read_start, s),
                                     under(video_staging, f"{uid}.mkv"), handoff_start=handoff, hints=ref))
    return Plan(job_id, shards, tuple(videos), tuple(ranges), tuple(problems), len(files),
                skipped_images, skipped_videos, tuple(ignored), tuple(tracks))


def _check_video_hints(uri: str, manifest: Manifest, info: VideoInfo, start: int, stop: int,
                       video: str) -> InputProblem | None:
    """Read and check a video's hints file before any work; a problem names the file and the entry."""
    opts = manifest.storage_options
    try:
        parsed = parse_hints(storage.read_bytes(uri, opts).decode("utf-8"), uri)
        sizes = {}
        for keyframe in parsed.keyframes:
            for image in (keyframe.image, keyframe.mask):
                if image and image not in sizes:
                    sizes[image] = image_size(storage.read_bytes(image, opts), image)
        check_keyframes(parsed, (start, stop), (info.width, info.height), sizes)
    except (HintsError, ImageDecodeError, FileNotFoundError, UnicodeDecodeError) as e:
        return InputProblem(video, "HintsError", f"{video}: hints {uri}: {e}" if uri not in str(e) else str(e))
    if not parsed.keyframes:
        return InputProblem(video, "HintsError", f"{uri}: no keyframes")
    return None


def _probe_or_problem(f: InputFile, manifest: Manifest) -> VideoInfo | InputProblem:
    try:
        return probe_video(f.uri, manifest.storage_options)
    except VideoError as e:
        return InputProblem(f.uri, "VideoError", str(e))
    except (OSError, ValueError) as e:
        return InputProblem(f.uri, "ReadError", f"{f.uri}: {e}")


def _files_under(prefix: str | None, manifest: Manifest, suffixes: str | tuple[str, ...],
                 problems: list[InputProblem], what: str) -> dict[str, str]:
    """``{path relative to prefix: URI}`` of the files with ``suffixes`` under ``prefix`` (hints, ground truth).

    A file whose relative path leaves ``prefix`` (``..`` in an object key) is left out and
    recorded as an ``UnsafePath`` problem; a missing prefix gives an empty mapping.

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
    out = {}
    for p in found:
        if not p.lower().endswith(suffixes):
            continue
        rel = posixpath.relpath(p, base)
        uri = storage.unstrip(fs, p)
        if _escapes(rel):
            problems.append(InputProblem(uri, "UnsafePath", f"{uri}: {what} whose path relative to {prefix} "
                                         f"({rel!r}) leaves it; ignored"))
            continue
        out[rel] = uri
    return out
