"""Thumbnails for the report: images and video frames read through storage, embedded as data URIs."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image

from colorstyle_core import imageio, storage
from colorstyle_core.sequences import list_frames
from colorstyle_core.video import VIDEO_SUFFIXES, probe, read_frames
from jobs.manifest import Manifest
from jobs.manifest_base import strip_redacted

log = logging.getLogger(__name__)

THUMB_PX = 200
"""Longer side of every thumbnail, in pixels."""
THUMB_QUALITY = 72
"""JPEG quality of the embedded thumbnails."""


# ---- reading media ----------------------------------------------------------------------------


class Media:
    """Reads images and video frames for thumbnails, with the right storage options per URI.

    Inputs and ground truth are read with the manifest's ``storage_options``, outputs and
    metrics files with the output's, both without the credentials the summary masked
    (those come from the environment, as for any fsspec URI); ``override`` (the
    command's ``--storage-options``) wins for both. Local paths get no options.
    """

    def __init__(self, override: dict | None, manifest: Manifest | None):
        if override is not None or manifest is None:
            self.input_opts = self.output_opts = override
        else:
            self.input_opts = strip_redacted(manifest.storage_options)
            self.output_opts = strip_redacted(manifest.output_storage_options)

    def opts(self, uri: str, role: str) -> dict | None:
        if storage.is_local(uri):
            return None
        return self.input_opts if role == "input" else self.output_opts

    def read(self, uri: str, role: str) -> bytes:
        return storage.read_bytes(uri, self.opts(uri, role))

    def thumbnail(self, uri: str | None, role: str) -> str | None:
        """A ``data:image/jpeg`` URI of a small copy of the image at ``uri``; ``None`` if unreadable."""
        if not uri:
            return None
        try:
            pixels = imageio.decode_image(self.read(uri, role), uri).pixels
            rgb = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
            return jpeg_data_uri(rgb[..., 0] if rgb.shape[2] == 1 else rgb)
        except Exception as e:  # one bad file must never stop the report
            log.info("report: no thumbnail for %s (%s: %s)", uri, type(e).__name__, e)
            return None

    def video_thumbnails(self, uri: str | None, indices: Sequence[int], role: str) -> dict[int, str]:
        """Thumbnails of frames ``indices`` of the video (or image sequence folder) at ``uri`` (those that decode).

        Each frame is decoded on its own (a seek to the key frame before it), so the last
        frame of a long film costs no more than the first.
        """
        if not uri or not indices:
            return {}
        if not uri.lower().endswith(VIDEO_SUFFIXES):  # an image sequence: frame i is its i-th numbered file
            try:
                frames = list_frames(uri, self.opts(uri, role))
            except Exception as e:  # a missing folder: placeholders
                log.info("report: %s unreadable (%s: %s)", uri, type(e).__name__, e)
                return {}
            thumbs = {i: self.thumbnail(frames[i], role) for i in sorted(set(indices)) if 0 <= i < len(frames)}
            return {i: t for i, t in thumbs.items() if t}
        local = storage.is_local(uri)
        path = uri.removeprefix("file://")

        def decode(fn):
            if local:
                return fn(path)
            with storage.open_read(uri, self.opts(uri, role)) as f:
                return fn(f)

        out: dict[int, str] = {}
        try:
            info = decode(lambda src: probe(src, uri))
        except Exception as e:  # a broken or missing video: placeholders
            log.info("report: %s unreadable (%s: %s)", uri, type(e).__name__, e)
            return out
        for index in sorted(set(indices)):
            if not 0 <= index < info.frame_count:
                continue
            try:
                rgb = decode(lambda src, i=index: next(read_frames(src, info, i, i + 1, uri))[1])
            except Exception as e:
                log.info("report: frame %d of %s unreadable (%s: %s)", index, uri, type(e).__name__, e)
                continue
            out[index] = jpeg_data_uri(rgb)
        return out


def jpeg_data_uri(pixels: np.ndarray, size: int = THUMB_PX) -> str:
    """``(H, W)`` or ``(H, W, 3)`` uint8 -> a small JPEG as a data URI (longer side ``size``)."""
    img = Image.fromarray(pixels)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


