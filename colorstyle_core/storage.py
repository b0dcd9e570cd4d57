"""The one place colorstyle talks to storage: fsspec URIs in, bytes out, atomic writes.

Any fsspec URI works: local paths, ``file://``, ``memory://``, ``s3://`` (with
``s3fs``), ``gs://`` (with ``gcsfs``), ... ``storage_options`` are passed to the
filesystem (for example ``{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}``
for an S3-compatible server).
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import fsspec
from fsspec.core import url_to_fs

StorageOptions = Mapping[str, Any]

# Object stores publish an object only when its upload completes, so a single PUT
# is already atomic; everything else gets write-to-temp-then-rename.
_ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "adl", "memory", "oss"})


class StorageError(OSError):
    """A storage operation failed; the message names the URI, the operation and the cause."""


def describe_error(error: BaseException) -> str:
    """``"NoCredentialsError: Unable to locate credentials"``: an exception as one short line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@contextmanager
def errors(uri: str, operation: str) -> Iterator[None]:
    """Turn whatever a filesystem backend raises into :class:`StorageError` naming ``uri`` and ``operation``.

    fsspec backends raise their own exceptions (botocore's ``NoCredentialsError`` and
    ``EndpointConnectionError`` are not ``OSError``); callers see one kind. ``FileNotFoundError``
    passes through unchanged (a missing file is often an answer, not a failure), and so do
    errors that already are :class:`StorageError`.

    Raises:
        StorageError: ``"<uri>: cannot <operation>: <cause>"``.
    """
    try:
        yield
    except (FileNotFoundError, StorageError, UnsafePathError):
        raise
    except IsADirectoryError:
        raise StorageError(f"{uri}: cannot {operation}: it is a directory, not a file") from None
    except Exception as e:  # noqa: BLE001 -- any backend's error, named in the message
        raise StorageError(f"{uri}: cannot {operation}: {describe_error(e)}") from e


def parse_options(text: str | None, flag: str = "--storage-options") -> dict[str, Any] | None:
    """fsspec options given as JSON text on a command line (``None`` for no text).

    Raises:
        ValueError: not JSON, or not a JSON object; the message names ``flag``.
    """
    if not text:
        return None
    try:
        opts = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} is not valid JSON: {e}") from None
    if not isinstance(opts, dict):
        raise ValueError(f"{flag} must be a JSON object")
    return opts


def filesystem(uri: str, storage_options: StorageOptions | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """``(filesystem, path)`` for ``uri``; the path is in the filesystem's own form."""
    return url_to_fs(uri, **dict(storage_options or {}))


def protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    proto = fs.protocol
    return proto[0] if isinstance(proto, (tuple, list)) else proto


def is_local(uri: str) -> bool:
    """True for plain paths and ``file://`` URIs."""
    return "://" not in uri or uri.startswith("file://")


def unstrip(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The full URI of ``path`` on ``fs`` (``bucket/key`` -> ``s3://bucket/key``)."""
    proto = protocol_of(fs)
    if proto in ("file", "local"):
        return os.path.normpath(path)
    return fs.unstrip_protocol(path)


def join(prefix: str, *parts: str) -> str:
    """Join URI parts with ``/`` (POSIX rules, also for object stores)."""
    if "://" in prefix:
        scheme, rest = prefix.split("://", 1)
        return f"{scheme}://{posixpath.join(rest, *parts)}" if rest else f"{scheme}://{posixpath.join(*parts)}"
    return os.path.join(prefix, *parts)


class UnsafePathError(ValueError):
    """A path that would leave the prefix it must stay under (``..`` segments, absolute parts)."""


def _split_uri(uri: str) -> tuple[str, str]:
    """``("s3://", "bucket/key")`` or ``("", "/local/path")``."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://", rest
    return "", uri


def has_dot_segments(uri: str) -> bool:
    """Whether any ``/``-separated segment of ``uri`` (after its scheme) is ``..``."""
    return ".." in _split_uri(uri)[1].replace(os.sep, "/").split("/")


def join_under(prefix: str, *parts: str) -> str:
    """:func:`join` that is proven to stay under ``prefix`` after normalisation.

    ``parts`` are relative paths (for example an input's path relative to its input
    root, which an object key such as ``a/../../b.jpg`` can make escape).

    Raises:
        UnsafePathError: a part is absolute, or the normalised result is not inside
            ``prefix`` (naming both).
    """
    for part in parts:
        if part.startswith("/") or "://" in part or (os.sep != "/" and os.path.isabs(part)):
            raise UnsafePathError(f"{part!r} is not a relative path (under {prefix})")
    scheme, root = _split_uri(prefix)
    norm = os.path.normpath if not scheme else posixpath.normpath
    base = norm(root) if root else ""
    joined = norm(posixpath.join(root, *parts) if scheme else os.path.join(root, *parts))
    sep = "/" if scheme else os.sep
    if base and base not in (".", sep) and joined != base and not joined.startswith(base.rstrip(sep) + sep):
        raise UnsafePathError(f"{'/'.join(parts)!r} leaves {prefix} (it resolves to {scheme}{joined})")
    if (not base or base == ".") and (joined == ".." or joined.startswith(".." + sep) or os.path.isabs(joined)):
        raise UnsafePathError(f"{'/'.join(parts)!r} leaves {prefix or '.'} (it resolves to {scheme}{joined})")
    return f"{scheme}{joined}"


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def is_dir(uri: str, storage_options: StorageOptions | None = None) -> bool:
    """Whether ``uri`` is a folder (on an object store: a prefix holding keys).

    Raises:
        StorageError: it cannot be listed (credentials, connection), naming it.
    """
    with errors(uri, "list"):
        fs, path = filesystem(uri, storage_options)
        return fs.isdir(path)


def read_bytes(uri: str, storage_options: StorageOptions | None = None) -> bytes:
    """The whole content of ``uri``.

    Raises:
        FileNotFoundError: when it does not exist.
        StorageError: for any other failure, naming the URI.
    """
    try:
        with errors(uri, "read"):
            fs, path = filesystem(uri, storage_options)
            return fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such file") from None


def read_many(uris: Sequence[str], storage_options: StorageOptions | None = None) -> list[bytes]:
    """The contents of several files on one filesystem, in order: fetched concurrently where the backend is
    asynchronous (S3, GCS: about one round trip for all of them, not one each), one after another elsewhere.

    Raises:
        FileNotFoundError: one of them does not exist (named).
        StorageError: any other failure, naming the file.
    """
    if not uris:
        return []
    fs, _ = filesystem(uris[0], storage_options)
    paths = [fs._strip_protocol(u) for u in uris]
    if not getattr(fs, "async_impl", False) or len(uris) == 1:
        return [read_bytes(u, storage_options) for u in uris]
    with errors(uris[0], "read"):
        got = fs.cat(paths, on_error="return")
    out = []
    for uri, path in zip(uris, paths):
        value = got.get(path) if isinstance(got, dict) else None
        if value is None:
            value = read_bytes(uri, storage_options)
        elif isinstance(value, FileNotFoundError):
            raise FileNotFoundError(f"{uri}: no such file")
        elif isinstance(value, BaseException):
            raise StorageError(f"{uri}: cannot read: {describe_error(value)}")
        out.append(value)
    return out


@contextmanager
def open_read(uri: str, storage_options: StorageOptions | None = None) -> Iterator[BinaryIO]:
    """A binary file object for streaming reads (large files: weights, videos).

    Raises:
        FileNotFoundError: it does not exist.
        StorageError: it cannot be opened (credentials, connection, ...).
    """
    try:
        with errors(uri, "open"):
            fs, path = filesystem(uri, storage_options)
            f = fs.open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such file") from None
    with f:
        yield f


@contextmanager
def open_source(uri: str, storage_options: StorageOptions | None = None,
                block_size: int = 8 << 20) -> Iterator[str | BinaryIO]:
    """A media source for PyAV or Pillow: the local path itself, or a seekable fsspec file.

    Local files are handed over by path (the decoders then read them directly);
    remote ones are opened with large read blocks (``block_size`` bytes) so a decoder's
    small reads do not become one request each.

    Raises:
        FileNotFoundError: the remote object does not exist.
        StorageError: it cannot be opened (credentials, connection, ...).
    """
    if is_local(uri):
        yield uri.removeprefix("file://")
        return
    try:
        with errors(uri, "open"):
            fs, path = filesystem(uri, storage_options)
            f = fs.open(path, "rb", block_size=block_size)
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such file") from None
    with f:
        yield f


def exists(uri: str, storage_options: StorageOptions | None = None) -> bool:
    """Whether ``uri`` exists.

    Raises:
        StorageError: the store cannot be asked (credentials, connection, ...).
    """
    with errors(uri, "check"):
        fs, path = filesystem(uri, storage_options)
        return fs.exists(path)


def _commit_atomically(uri: str, storage_options: StorageOptions | None,
                       put: Callable[[fsspec.AbstractFileSystem, str], None]) -> None:
    try:
        _commit(uri, storage_options, put)
    except FileNotFoundError as e:  # a missing bucket or parent: for a write, that is a failure
        raise StorageError(f"{uri}: cannot write: {describe_error(e)}") from e


def _commit(uri: str, storage_options: StorageOptions | None,
            put: Callable[[fsspec.AbstractFileSystem, str], None]) -> None:
    with errors(uri, "write"):
        fs, path = filesystem(uri, storage_options)
        proto = protocol_of(fs)
        if proto in _ATOMIC_PUT_PROTOCOLS:
            put(fs, path)
            return
        parent = (os.path if proto in ("file", "local") else posixpath).dirname(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            put(fs, tmp)
            fs.mv(tmp, path)
        finally:
            if fs.exists(tmp):
                fs.rm_file(tmp)


def write_bytes_atomic(uri: str, data: bytes, storage_options: StorageOptions | None = None) -> None:
    """Write ``data`` to ``uri`` so that readers see either nothing or the whole file.

    Local and other rename-capable filesystems: write ``<name>.tmp-<random>`` in the
    same directory, then rename over the target. Object stores: one PUT, which the
    store publishes only when complete. Parent directories are created.

    Raises:
        StorageError: naming the URI when the write fails (for example a read-only prefix).
    """
    _commit_atomically(uri, storage_options, lambda fs, path: fs.pipe_file(path, data))


def copy_file_atomic(src_local_path: str, uri: str, storage_options: StorageOptions | None = None) -> None:
    """Upload a local file to ``uri`` with the guarantees of :func:`write_bytes_atomic`,
    streaming instead of holding the file in memory.

    Raises:
        StorageError: naming the URI when the write fails.
    """
    _commit_atomically(uri, storage_options, lambda fs, path: fs.put_file(src_local_path, path))
