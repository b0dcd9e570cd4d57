"""Shared fixtures: the shared test data, generated weights, a real S3-compatible server."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"


def shared_dir() -> Path:
    return Path(os.environ.get("COLORSTYLE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` (or ``$COLORSTYLE_SHARED``): real photos, paintings and videos."""
    root = shared_dir()
    if not (root / "data" / "gray").is_dir():
        pytest.skip(f"shared test data not found at {root} (set COLORSTYLE_SHARED)")
    return root


def load_rgb(path: Path, size: int | None = None) -> torch.Tensor:
    """A photo as ``(1, 3, H, W)`` float32 in [0, 1], optionally resized (longer side)."""
    img = Image.open(path).convert("RGB")
    if size:
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test may touch the user's cache or the network for weights."""
    monkeypatch.setenv("COLORSTYLE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("COLORSTYLE_OFFLINE", "1")


class GeneratedWeights:
    """Generated checkpoints in the published layouts, saved once per session."""

    def __init__(self, root: Path):
        self.root = root
        self._made: dict[tuple[str, int], tuple[Path, str]] = {}

    def get(self, name: str, seed: int = 0) -> tuple[Path, str]:
        """``(path, full sha256)`` of ``name``'s generated checkpoint (file named hub-style)."""
        from colorstyle_core.synthetic import save_generated

        key = (name, seed)
        if key not in self._made:
            tmp = self.root / f"{name}-seed{seed}.tmp"
            digest = save_generated(name, str(tmp), seed)
            path = self.root / f"{name}-seed{seed}-{digest[:8]}.pth"
            tmp.rename(path)
            self._made[key] = (path, digest)
        return self._made[key]


@pytest.fixture(scope="session")
def generated_weights(tmp_path_factory) -> GeneratedWeights:
    return GeneratedWeights(tmp_path_factory.mktemp("weights"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on 127.0.0.1; yields its endpoint URL."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, request):
    """A fresh bucket on the moto server: ``(bucket URI prefix, storage_options)``."""
    import s3fs

    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_server}}
    fs = s3fs.S3FileSystem(**opts)
    bucket = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + f"-{os.getpid()}"
    bucket = "".join(c for c in bucket if c.isalnum() or c == "-")[:60]
    fs.mkdir(bucket)
    yield f"s3://{bucket}", opts
    fs.rm(bucket, recursive=True)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 4 logical CPUs (two training workers and Ray Train's own actors), unless one runs."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING")
    yield
    if started:
        ray.shutdown()
