"""Shared fixtures and helpers: the shared test data, generated weights, a real S3-compatible server, one local
Ray for the whole session, and the manifests and run options the job tests use."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from jobs.driver import RunOptions
from jobs.manifest import Manifest, parse_manifest

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
        from colorstyle_core.catalog import save_generated

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_manifest(text: str, name: str = "test.yaml") -> Manifest:
    """A job manifest from indented YAML text (as the tests write it inline), parsed as ``name``."""
    return parse_manifest(textwrap.dedent(text), name)


QUIET = RunOptions(progress=False)
"""Run options for the job tests: no progress bar."""


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on 127.0.0.1; yields its endpoint URL."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
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


RAY_INIT: dict[str, Any] = {"num_cpus": 4}
"""The session's local Ray: 4 logical CPUs (two training workers and Ray Train's own actors). A module that
needs another one (logical GPUs) sets its own ``RAY_INIT``; the session Ray is restarted for it and after it."""


class SessionRay:
    """One local Ray for the test session, started on first use and kept across modules; restarted only when a
    module asks for other ``ray.init`` arguments, and released for modules that start their own cluster."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] | None = None
        self.starts = 0

    def use(self, kwargs: dict[str, Any]) -> None:
        import ray

        if self.kwargs == kwargs and ray.is_initialized():
            return
        self.release()
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", include_dashboard=False, logging_level="ERROR", **kwargs)  # never a stray cluster
        self.kwargs = kwargs
        self.starts += 1

    def release(self) -> None:
        """Shut the session's Ray down (a module that runs its own cluster asks for this first)."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
            time.sleep(0.5)  # let the raylet and GCS go before another cluster starts
        self.kwargs = None


@pytest.fixture(scope="session")
def ray_session():
    """The session's :class:`SessionRay` (shut down at the end)."""
    session = SessionRay()
    yield session
    session.release()


@pytest.fixture(scope="module")
def ray_local(ray_session, request):
    """The session's local Ray, with the module's ``RAY_INIT`` arguments when it has some."""
    ray_session.use(getattr(request.module, "RAY_INIT", RAY_INIT))
    yield
