"""Listing the inputs a manifest names: files, prefixes, globs and list files, on any fsspec filesystem, as a stream.

:func:`iter_files` yields each input file (or the problem with an entry) as the listing goes:
an object-store prefix page by page (1000 keys a request on S3), a list file line by line, so
the first units of an archive of a million photographs start within seconds and the listing
never holds them all. A file listed twice is yielded once; nothing under the output prefix or
a ``_colorstyle/`` control folder is ever read back in; a key whose relative path climbs out of
its root is an ``UnsafePath`` problem. Files named in a list file are not checked one by one
here (a million HEAD requests): one that is missing is reported when its unit reads it, as a
failure row naming it.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import fsspec
from fsspec.asyn import sync
from fsspec.core import has_magic  # the glob test fsspec itself uses

from colorstyle_core import storage
from colorstyle_core.imageio import IMAGE_SUFFIXES
from colorstyle_core.video import VIDEO_SUFFIXES
from jobs.manifest_base import InputSpec
from jobs.paths import CONTROL_DIR, suffix


def digest(text: str) -> int:
    """An 8-byte digest of ``text`` (BLAKE2b), as an unsigned 64-bit int: how listing, planning and resuming keep
    millions of URIs in little memory."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


IGNORED_SHOWN = 1000
"""Files of other kinds named in a listing that are kept for the plan's printout (all are counted)."""


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
    kind: str  # "image", "video" or "sequence" (a folder of numbered frames)
    frames: tuple[int, int | None] | None = None
    fps: Fraction | None = None  # a sequence's frames per second


class Ignored(Protocol):
    """Where a listing counts the files it skips (other suffixes)."""

    ignored: list[str]
    ignored_count: int


def kind_of(path: str) -> str | None:
    """``"video"``, ``"image"`` or ``None`` from a path's suffix."""
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


def walk_files(fs: fsspec.AbstractFileSystem, root: str) -> Iterator[str]:
    """Every file under ``root``, in key order, as the listing goes (not all at once).

    On S3, the listing pages (1000 keys a request) are yielded as they come; elsewhere a folder at a time.
    """
    if storage.protocol_of(fs) in ("s3", "s3a") and hasattr(fs, "_iterdir"):
        bucket, key = fs.split_path(root)[:2]  # (bucket, key, version id)
        prefix = key.rstrip("/") + "/" if key else ""
        pages = fs._iterdir(bucket, delimiter="", prefix=prefix)
        while True:
            try:
                entry = sync(fs.loop, pages.__anext__)
            except StopAsyncIteration:
                return
            if entry.get("type", "file") != "directory" and not entry["name"].endswith("/"):
                yield entry["name"]
        return
    for folder, _, files in fs.walk(root, detail=False):
        for name in sorted(files):
            yield f"{folder.rstrip('/')}/{name}"


def iter_files(inputs: Sequence[InputSpec], storage_options: dict | None, output: str,
               output_storage_options: dict | None = None, ignored: Ignored | None = None,
               sequences: bool = True) -> Iterator[InputFile | InputProblem]:
    """The image and video files that input entries name (files, prefixes, globs, list files), as listed.

    Args:
        inputs: the entries (a job's ``inputs``, a training run's ``data``).
        output: a prefix whose files are never listed (what colorstyle writes is not read back in).
        ignored: counts files of other suffixes found while listing a prefix or glob.
        sequences: image sequence entries are inputs (jobs); ``False``: each is a problem (training data).
    Yields:
        Each file once (with its path relative to its input root), or a problem: a missing prefix, an empty
        glob, an unknown suffix named explicitly, an unreadable list file, a path that leaves its root.
        An image sequence entry is one :class:`InputFile` of kind ``"sequence"`` (its folder, relative path its
        name): its frames are listed when it is probed.
    Raises:
        storage.StorageError: an input cannot be listed at all (credentials, connection): a problem of
            the whole job, not of one input.
    """
    out_fs, out_path = storage.filesystem(output, output_storage_options if output_storage_options is not None
                                          else storage_options)
    out_root = out_path.rstrip("/") + "/"
    seen: set[int] = set()  # 8-byte digests of the URIs yielded: a million files cost a few tens of MB

    def accept(fs, path: str, rel: str, spec: InputSpec, explicit: bool) -> InputFile | InputProblem | None:
        uri = storage.unstrip(fs, path)
        if (path.rstrip("/") + "/").startswith(out_root) and type(fs) is type(out_fs):
            return None  # never read our own outputs back in
        if f"/{CONTROL_DIR}/" in f"/{rel}":
            return None
        if _escapes(rel):
            return InputProblem(uri, "UnsafePath", f"{uri}: its path relative to its input root, {rel!r}, "
                                "leaves that root (\"..\" segments); nothing is written for it")
        kind = kind_of(path)
        if kind is None:
            if explicit:
                return InputProblem(uri, "UnsupportedInput", f"{uri}: not an image or video suffix "
                                    f"({suffix(path) or 'none'})")
            if ignored is not None:
                ignored.ignored_count += 1
                if len(ignored.ignored) < IGNORED_SHOWN:
                    ignored.ignored.append(uri)
            return None
        key = digest(uri)
        if key in seen:
            return None
        seen.add(key)
        return InputFile(uri, rel, kind, (spec.frames.start, spec.frames.end) if spec.frames else None)

    for spec in inputs:
        if spec.sequence is not None:
            if (f := _sequence(spec, sequences, seen, (out_fs, out_root), storage_options)) is not None:
                yield f
            continue
        if spec.list is not None:
            yield from (f for f in _list_file(spec, storage_options, accept) if f is not None)
            continue
        assert spec.uri is not None
        try:
            with storage.errors(spec.uri, "list"):
                fs, path = storage.filesystem(spec.uri, storage_options)
                if has_magic(path):
                    base = _glob_base(path)
                    matches = [p for p in sorted(fs.glob(path)) if fs.isfile(p)]
                    if not matches:
                        yield InputProblem(spec.uri, "EmptyInput", f"{spec.uri}: the glob matched no files")
                    for p in matches:
                        if (f := accept(fs, p, posixpath.relpath(p, base) if base else p, spec, False)) is not None:
                            yield f
                elif fs.isdir(path):
                    any_file = False
                    for p in walk_files(fs, path):
                        any_file = True
                        if (f := accept(fs, p, posixpath.relpath(p, path.rstrip("/")), spec, False)) is not None:
                            yield f
                    if not any_file:
                        yield InputProblem(spec.uri, "EmptyInput", f"{spec.uri}: the prefix holds no files")
                elif fs.isfile(path):
                    if (f := accept(fs, path, posixpath.basename(path), spec, True)) is not None:
                        yield f
                else:
                    yield InputProblem(spec.uri, "MissingInput", f"{spec.uri}: no such file or prefix")
        except FileNotFoundError as e:
            yield InputProblem(spec.uri, "MissingInput", f"{spec.uri}: cannot list ({e})")


def _sequence(spec: InputSpec, allowed: bool, seen: set[int], output: tuple[fsspec.AbstractFileSystem, str],
              storage_options: dict | None) -> InputFile | InputProblem | None:
    """An image sequence entry as one input (``None`` when the same folder was named before); a folder under the
    output prefix is a problem (its frames would be written over, or be outputs read back in)."""
    assert spec.sequence is not None
    uri = spec.sequence.rstrip("/")
    if not allowed:
        return InputProblem(uri, "UnsupportedInput", f"{uri}: image sequences are inputs of jobs; to train on its "
                            "frames, name the folder as uri")
    fs, path = storage.filesystem(uri, storage_options)
    out_fs, out_root = output
    if type(fs) is type(out_fs) and (path.rstrip("/") + "/").startswith(out_root):
        return InputProblem(uri, "UnsafePath", f"{uri}: the sequence lies under the output prefix {out_root}: its "
                            "frames could be written over; nothing is written for it")
    key = digest(uri)
    if key in seen:
        return None
    seen.add(key)
    frames = (spec.frames.start, spec.frames.end) if spec.frames else None
    return InputFile(uri, posixpath.basename(uri) or uri, "sequence", frames, spec.rate)


def _list_lines(spec: InputSpec, opts) -> Iterator[str]:
    """The URIs a list file names, one per line (``#`` comments; relative ones from the list file's folder)."""
    assert spec.list is not None
    list_dir = spec.list.rsplit("/", 1)[0] if "/" in spec.list else "."
    with storage.open_read(spec.list, opts) as f:
        for raw in f:
            line = raw.decode("utf-8").strip()
            if line and not line.startswith("#"):
                yield line if "://" in line or line.startswith("/") else storage.join(list_dir, line)


def _list_file(spec: InputSpec, opts, accept) -> Iterator[InputFile | InputProblem | None]:
    """The files a list file names, their paths relative to the folder they all share (the list is read twice:
    once for that folder, a line at a time, then for the files: never held whole)."""
    assert spec.list is not None
    filesystems: dict[str, fsspec.AbstractFileSystem] = {}

    def located(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:  # one filesystem per protocol, not per line
        protocol = uri.split("://", 1)[0] if "://" in uri else "file"
        if protocol not in filesystems:
            filesystems[protocol] = storage.filesystem(uri, opts)[0]
        fs = filesystems[protocol]
        return fs, fs._strip_protocol(uri)

    try:
        common: str | None = None
        for uri in _list_lines(spec, opts):
            folder = posixpath.dirname(located(uri)[1])
            if common is not None and (folder == common or folder.startswith(common + "/")):
                continue
            try:
                common = folder if common is None else posixpath.commonpath([common, folder])
            except ValueError:  # mixed absolute/relative (different filesystems): keep full paths
                common = ""
        if common is None:
            yield InputProblem(spec.list, "EmptyInput", f"{spec.list}: the list file names no inputs")
            return
        for uri in _list_lines(spec, opts):
            fs, path = located(uri)
            yield accept(fs, path, posixpath.relpath(path, common) if common else path, spec, True)
    except (FileNotFoundError, UnicodeDecodeError) as e:
        yield InputProblem(spec.list, "MissingInput", f"{spec.list}: cannot read list file ({e})")


def list_files(inputs: Sequence[InputSpec], storage_options: dict | None, output: str,
               output_storage_options: dict | None = None) -> tuple[list[InputFile], list[InputProblem], list[str]]:
    """:func:`iter_files` collected: ``(files sorted by URI, problems, ignored files)`` (training data, benchmarks).

    Raises:
        storage.StorageError: an input cannot be listed at all.
    """

    @dataclass
    class _Ignored:
        ignored: list[str]
        ignored_count: int = 0

    skipped = _Ignored([])
    files, problems = [], []
    for f in iter_files(inputs, storage_options, output, output_storage_options, skipped, sequences=False):
        (files if isinstance(f, InputFile) else problems).append(f)
    return sorted(files, key=lambda f: f.uri), problems, skipped.ignored
