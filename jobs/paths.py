"""Where every file of a job goes: outputs, staging, metrics (derived from the input and the job, nothing else).

Every path made here goes through :func:`colorstyle_core.storage.join_under`, so it is
proven to lie under its prefix after normalisation: an input whose relative path climbs
out of its root (an object key such as ``a/../../victim.jpg``) raises
:class:`~colorstyle_core.storage.UnsafePathError` instead of naming a file elsewhere.
"""

from __future__ import annotations

from colorstyle_core import storage
from colorstyle_core.imageio import IMAGE_SUFFIXES

CONTROL_DIR = "_colorstyle"
"""Metrics, done records and staging live under ``<output prefix>/_colorstyle/``; inputs under it are never read."""


def suffix(path: str) -> str:
    """The lower-case suffix of a path's last component (``".jpg"``), or ``""``."""
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def stem(rel: str) -> str:
    """``rel`` without its suffix."""
    return rel[: -len(suffix(rel))] if suffix(rel) else rel


under = storage.join_under
"""``under(prefix, *relative parts)``: a path proven to stay under ``prefix`` (raises ``UnsafePathError``)."""


def default_metrics_prefix(output_prefix: str, job_id: str) -> str:
    """``<output prefix>/_colorstyle/<job id>``."""
    return under(output_prefix, CONTROL_DIR, job_id)


def staging_root(output_prefix: str, job_id: str) -> str:
    """Where a job's frame-range segments wait for assembly."""
    return under(output_prefix, CONTROL_DIR, "staging", job_id)


def output_uri_for(prefix: str, image_format: str, rel: str, kind: str, *, is_gif: bool = False) -> str:
    """Where an input's result goes: its relative path under the output prefix, new suffix.

    Args:
        prefix: the output prefix (``output.prefix``).
        image_format: the stills' format (``output.image_format``: ``png``, ``jpg``, ... or ``same``).
        rel: the input's path relative to its input root.
        kind: ``"image"`` or ``"video"``.
        is_gif: a video that is an animated GIF (stays a GIF; other videos become MP4).
    Raises:
        storage.UnsafePathError: ``rel`` would leave the output prefix.
    """
    if kind == "video":
        new = ".gif" if is_gif or suffix(rel) == ".gif" else ".mp4"
    elif image_format == "same":
        new = suffix(rel) if suffix(rel) in IMAGE_SUFFIXES else ".png"
    else:
        new = "." + image_format
    return under(prefix, stem(rel) + new)
