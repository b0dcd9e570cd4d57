"""Benchmarks: scripts that measure and print figures, never assert.

``colorstyle bench`` (:mod:`jobs.bench.job`: the job against the model alone and a naive loop, the
actor path, the stylization methods); ``python -m jobs.bench.<name>`` for the others
(``colorizers``, ``encode``, ``flow``, ``memory``, ``scale``, ``stylizers``, ``temporal``, ``train``) and
``python -m jobs.bench.gpu_check`` on a GPU node.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root (``manifests/``, ``tests/``)."""

SHARED_DATA = Path(os.environ.get("COLORSTYLE_SHARED", REPO.parent / "shared")) / "data"
"""The shared test data (photos, paintings, videos): ``$COLORSTYLE_SHARED/data``, else ``<repo>/../shared/data``."""
