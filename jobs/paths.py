"""Where every file of a job goes: outputs, staging, metrics (derived from the input and the job, nothing else)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from colorstyle_core import storage
from colorstyle_core.imageio import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from jobs.manifest import Manifest

CONTROL_DIR = "_colorstyle"
"""Metrics, done records and staging live under ``<output prefix>/_colorstyle/``; inputs under it are never read."""


def suffix(path: str) -> str:
    """The lower-case suffix of a path's last component (``".jpg"``), or ``""``."""
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def stem(rel: str) -> str:
    """``rel`` without its suffix."""
    return rel[: -len(suffix(rel))] if suffix(rel) else rel


def default_metrics_prefix(output_prefix: str, job_id: str) -> str:
    """``<output prefix>/_colorstyle/<job id>``."""
    return storage.join(output_prefix, CONTROL_DIR, job_id)


def staging_root(output_prefix: str, job_id: str) -> str:
    """Where a job's frame-range segments wait for assembly."""
    return storage.join(output_prefix, CONTROL_DIR, "staging", job_id)


def output_uri_for(manifest: Manifest, rel: str, kind: str, *, is_gif: bool = False) -> str:
    """Where an input's result goes: its relative path under the output prefix, new suffix.

    Args:
        manifest: the job (output prefix and image format).
        rel: the input's path relative to its input root.
        kind: ``"image"`` or ``"video"``.
        is_gif: a video that is an animated GIF (stays a GIF; other videos become MP4).
    """
    if kind == "video":
        new = ".gif" if is_gif or suffix(rel) == ".gif" else ".mp4"
    elif manifest.output.image_format == "same":
        new = suffix(rel) if suffix(rel) in IMAGE_SUFFIXES else ".png"
    else:
        new = "." + manifest.output.image_format
    return storage.join(manifest.output.prefix, stem(rel) + new)
