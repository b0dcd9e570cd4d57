"""The weights loader: every resolution path, verification, refusal of bad files, staging."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import os
import pickle
import threading
from pathlib import Path

import fsspec
import pytest
import torch

from colorstyle_core import loader
from colorstyle_core.catalog import build, get_spec
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.colorizers.zhang import ECCV16
from colorstyle_core.weights import VGG19
from jobs.cli import main


def _spec_for(path: Path, digest: str, url: str = "https://weights.invalid/unused"):
    """ECCV16's record, pointing at a generated file (its published hash would not match)."""
    return dataclasses.replace(ECCV16, url=f"{url.rstrip('/')}/{path.name}", sha256=digest[:8])


def _load(spec, source=loader.WeightsSource(), **kw):
    model = build(spec.name)
    resolved = loader.load_weights(model, spec, source, **kw)
    return model, resolved


def _same_weights(model, path: Path) -> bool:
    ref = torch.load(path, weights_only=True)
    return all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


# ---- resolution paths -------------------------------------------------------------


def test_local_path_and_file_uri(generated_weights):
    path, digest = generated_weights.get("eccv16")
    for uri in (str(path), f"file://{path}"):
        model, resolved = _load(ECCV16, loader.WeightsSource(uri))  # hub-style hash in the file name
        assert resolved.sha256 == digest and _same_weights(model, path)


def test_memory_uri_with_full_sha256(generated_weights):
    path, digest = generated_weights.get("eccv16")
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/weights/my-colorizer.pth", path.read_bytes())
    model, resolved = _load(ECCV16, loader.WeightsSource("memory://weights/my-colorizer.pth", digest))
    assert resolved.origin == "memory://weights/my-colorizer.pth" and _same_weights(model, path)
    assert not resolved.path.exists()  # the temporary download was removed after loading


def test_s3_uri_on_a_real_s3_server(generated_weights, s3):
    prefix, opts = s3
    path, digest = generated_weights.get("eccv16")
    fsspec.filesystem("s3", **opts).put_file(str(path), f"{prefix}/weights/{path.name}")
    source = loader.WeightsSource(f"{prefix}/weights/{path.name}", None, opts)
    model, resolved = _load(ECCV16, source)
    assert resolved.sha256 == digest and _same_weights(model, path)


def test_cache_is_used_and_verified(generated_weights, tmp_path):
    path, digest = generated_weights.get("eccv16")
    spec = _spec_for(path, digest)
    (tmp_path / spec.filename).write_bytes(path.read_bytes())
    model, resolved = _load(spec, cache_dir=tmp_path)
    assert resolved.origin == f"cache:{tmp_path / spec.filename}" and _same_weights(model, path)


def test_default_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORSTYLE_CACHE", str(tmp_path))
    assert loader.default_cache_dir() == tmp_path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server standing in for the published URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_from_url_into_cache_then_cache_hit(generated_weights, http_server, tmp_path):
    root, url = http_server
    path, digest = generated_weights.get("eccv16")
    (root / path.name).write_bytes(path.read_bytes())
    spec = _spec_for(path, digest, url)
    cache = tmp_path / "cache"
    model, resolved = _load(spec, cache_dir=cache, allow_download=True)
    assert resolved.origin == spec.url and (cache / path.name).is_file() and _same_weights(model, path)
    assert [p.name for p in cache.iterdir()] == [path.name]  # no partial files left
    (root / path.name).unlink()  # the second run must not need the network
    _, again = _load(spec, cache_dir=cache, allow_download=True)
    assert again.origin.startswith("cache:")


def test_download_with_wrong_hash_is_refused_and_not_cached(generated_weights, http_server, tmp_path):
    root, url = http_server
    path, digest = generated_weights.get("eccv16")
    (root / path.name).write_bytes(path.read_bytes())
    spec = dataclasses.replace(_spec_for(path, digest, url), sha256="00000000")
    with pytest.raises(loader.WeightsIntegrityError, match="00000000"):
        _load(spec, cache_dir=tmp_path / "cache", allow_download=True)
    assert list((tmp_path / "cache").iterdir()) == []


# ---- refusals --------------------------------------------------------------------


def test_offline_without_cache_gives_one_clear_error(tmp_path):
    with pytest.raises(loader.WeightsUnavailableError) as err:
        _load(ECCV16, cache_dir=tmp_path)
    text = str(err.value)
    for needle in ("colorization_release_v2-9b330a0b.pth", ECCV16.url, "--weights", "colorstyle weights fetch eccv16"):
        assert needle in text


def test_unreachable_url_gives_the_same_clear_error(tmp_path):
    spec = dataclasses.replace(ECCV16, url="http://127.0.0.1:9/colorization_release_v2-9b330a0b.pth")
    with pytest.raises(loader.WeightsUnavailableError, match="downloading failed"):
        _load(spec, cache_dir=tmp_path, allow_download=True)


def test_missing_user_file(tmp_path):
    with pytest.raises(loader.WeightsUnavailableError, match="does not exist"):
        _load(ECCV16, loader.WeightsSource(str(tmp_path / "nope.pth")))


def test_published_hash_is_checked_for_files_without_a_hash(generated_weights, tmp_path):
    path, _ = generated_weights.get("eccv16")
    plain = tmp_path / "colorizer.pth"
    plain.write_bytes(path.read_bytes())
    with pytest.raises(loader.WeightsIntegrityError, match="9b330a0b") as err:
        _load(ECCV16, loader.WeightsSource(str(plain)))
    assert "--weights-sha256" in str(err.value)


def test_given_sha256_mismatch_is_refused(generated_weights):
    path, _ = generated_weights.get("eccv16")
    with pytest.raises(loader.WeightsIntegrityError):
        _load(ECCV16, loader.WeightsSource(str(path), "ab" * 32))
    with pytest.raises(loader.WeightsError, match="hex"):
        _load(ECCV16, loader.WeightsSource(str(path), "not-a-hash"))


def test_truncated_file_is_refused(generated_weights, tmp_path):
    path, digest = generated_weights.get("eccv16")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(loader.WeightsIntegrityError):  # against the original's hash
        _load(ECCV16, loader.WeightsSource(str(truncated), digest))
    own = hashlib.sha256(truncated.read_bytes()).hexdigest()
    with pytest.raises(loader.WeightsFormatError, match="truncated or corrupt"):  # even with its own hash
        _load(ECCV16, loader.WeightsSource(str(truncated), own))


class _Payload:
    """Unpickling this would run code (create a marker file)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model1.0.weight": torch.zeros(1), "x": _Payload(str(marker))}, evil, pickle_protocol=2)
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    with pytest.raises(loader.WeightsFormatError, match="possibly code"):
        _load(ECCV16, loader.WeightsSource(str(evil), digest))
    assert not marker.exists()
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(_Payload(str(marker)), protocol=2))
    with pytest.raises(loader.WeightsFormatError):
        _load(ECCV16, loader.WeightsSource(str(raw), hashlib.sha256(raw.read_bytes()).hexdigest()))
    assert not marker.exists()


def test_wrong_layout_names_the_keys(generated_weights):
    path, digest = generated_weights.get("siggraph17")
    with pytest.raises(loader.WeightsLayoutError) as err:
        _load(ECCV16, loader.WeightsSource(str(path), digest))
    text = str(err.value)
    assert "model8up.0.weight" in text and "missing" in text and "shape mismatches" in text


def test_non_state_dict_is_refused(tmp_path):
    f = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], f)
    with pytest.raises(loader.WeightsFormatError, match="state_dict"):
        _load(ECCV16, loader.WeightsSource(str(f), hashlib.sha256(f.read_bytes()).hexdigest()))


# ---- builders and staging ----------------------------------------------------------


def test_colorizer_and_stylizer_load_through_the_loader(generated_weights):
    from colorstyle_core.style.gatys import Stylizer

    path, digest = generated_weights.get("siggraph17")
    colorizer = Colorizer.from_weights("siggraph17", loader.WeightsSource(str(path)), device="cpu")
    assert colorizer.provenance.sha256 == digest and not colorizer.provenance.untrained
    vpath, vdigest = generated_weights.get("vgg19")
    stylizer = Stylizer.from_weights("vgg19", loader.WeightsSource(str(vpath)), device="cpu")
    assert stylizer.provenance.sha256 == vdigest
    assert set(stylizer.extractor.state_dict()) == {k for k in torch.load(vpath, weights_only=True)
                                                     if k.startswith("features.")}


def test_fetch_stages_into_local_dir_memory_and_s3(generated_weights, tmp_path, s3):
    path, digest = generated_weights.get("vgg19")
    spec = get_spec("vgg19")
    source = loader.WeightsSource(str(path), digest)
    local = loader.fetch(spec, str(tmp_path / "staged"), source)
    assert local == str(tmp_path / "staged" / VGG19.filename)
    assert hashlib.sha256(Path(local).read_bytes()).hexdigest() == digest
    mem = loader.fetch(spec, "memory://bucket/w/", source)
    assert fsspec.filesystem("memory").cat_file(mem.removeprefix("memory://")) == path.read_bytes()
    prefix, opts = s3
    remote = loader.fetch(spec, f"{prefix}/weights/", source, dest_storage_options=opts)
    assert remote == f"{prefix}/weights/{VGG19.filename}"
    assert fsspec.filesystem("s3", **opts).cat_file(remote) == path.read_bytes()


def test_cli_weights_fetch_then_use_the_bucket_copy(generated_weights, s3, capsys):
    import json

    prefix, opts = s3
    path, digest = generated_weights.get("eccv16")
    rc = main(["weights", "fetch", "eccv16", "--from", str(path), "--sha256", digest,
               "--to", f"{prefix}/weights/", "--storage-options", json.dumps(opts)])
    assert rc == 0
    written = capsys.readouterr().out.strip()
    assert written == f"{prefix}/weights/{ECCV16.filename}"
    # the staged copy carries the published name, so only a full sha256 can vouch for these generated weights
    model, resolved = _load(ECCV16, loader.WeightsSource(written, digest, opts))
    assert resolved.sha256 == digest


def test_cli_reports_missing_weights_and_exits_2(tmp_path, capsys, shared):
    rc = main(["colorize", str(shared / "data" / "gray" / "coffee.jpg"), str(tmp_path / "out.png")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "colorization_release_v2-9b330a0b.pth" in err and "colorstyle weights fetch" in err
    assert not (tmp_path / "out.png").exists()
