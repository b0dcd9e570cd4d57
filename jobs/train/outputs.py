"""Where a training run's results go, and how a checkpoint is written (named by its hash, atomically).

Under the run's ``output`` prefix::

    <model>-<first 8 hex of sha256>.pth    the weights, in the published state_dict layout
    <model>-<first 8 hex of sha256>.json   sidecar: base weights and their hash, data, steps, loss, blocks, code
    train_metrics.parquet                  one row per step: loss terms, learning rate, samples/s per worker, wall time
    validation.parquet                     held-out samples: starting vs trained weights (and the grey baseline)
    training.json                          the run's summary
    validation/NN-<name>.jpg               a few held-out samples: grey input | start | tuned | truth
    ray-train/                             Ray Train's checkpoints (resume points)

The checkpoint file loads with ``colorstyle colorize --weights <file>`` and in a job's
``weights`` (its hash is in its name), through the one loader, strictly.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch

from colorstyle_core import storage

METRICS_SCHEMA = pa.schema([
    ("step", pa.int64()), ("loss", pa.float64()), ("lr", pa.float64()), ("wall_s", pa.float64()),
    ("samples_per_s", pa.float64()), ("samples_per_s_by_worker", pa.list_(pa.float64())),
    ("classification", pa.float64()), ("regression", pa.float64()),
    ("content", pa.float64()), ("style", pa.float64()), ("tv", pa.float64()), ("temporal", pa.float64()),
])
"""One row per optimiser step (loss terms that a kind does not have are null)."""

VALIDATION_SCHEMA = pa.schema([
    ("sample", pa.string()), ("weights", pa.string()), ("psnr", pa.float64()), ("ssim", pa.float64()),
    ("ab_error", pa.float64()), ("colorfulness", pa.float64()), ("delta_colorfulness", pa.float64()),
    ("style_loss", pa.float64()), ("content_loss", pa.float64()),
])
"""One row per held-out sample and weights (``start``, ``tuned``, ``grey`` baseline)."""


@dataclass(frozen=True)
class TrainPaths:
    """The files of one run under its output prefix."""

    output: str
    options: dict | None = None

    def _uri(self, name: str) -> str:
        return storage.join_under(self.output, name)

    @property
    def metrics(self) -> str:
        return self._uri("train_metrics.parquet")

    @property
    def validation(self) -> str:
        return self._uri("validation.parquet")

    @property
    def summary(self) -> str:
        return self._uri("training.json")

    def example(self, k: int, sample: str) -> str:
        """A held-out sample's strip (grey input | start | tuned | truth), JPEG."""
        stem = storage.basename(sample.split("#", 1)[0]).rsplit(".", 1)[0]
        frame = sample.split("#frame ", 1)[1] if "#frame " in sample else None
        name = f"{k:02d}-{stem}" + (f"-frame{frame}" if frame else "")
        return self._uri(f"validation/{''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)}.jpg")

    @property
    def ray_storage(self) -> str:
        return self._uri("ray-train")


def export_checkpoint(paths: TrainPaths, name: str, state: dict[str, torch.Tensor], sidecar: dict[str, Any]) -> str:
    """Write ``state`` as ``<name>-<sha8>.pth`` (the full sha256 in the sidecar) and its ``.json``; atomically.

    Returns:
        The checkpoint's URI.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    uri = storage.join_under(paths.output, f"{name}-{digest[:8]}.pth")
    storage.write_bytes_atomic(uri, data, paths.options)
    meta = {**sidecar, "file": storage.basename(uri), "sha256": digest, "bytes": len(data)}
    storage.write_bytes_atomic(uri.removesuffix(".pth") + ".json", json.dumps(meta, indent=2, default=str).encode(),
                               paths.options)
    return uri
