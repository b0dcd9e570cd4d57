"""Still images: bytes <-> arrays, with the conversions archives need.

Decoding accepts what Pillow reads (PNG, JPEG, WebP, TIFF, BMP, GIF first frame, ...)
and normalises it: EXIF orientation applied, 16-bit kept at full precision, palette
expanded, alpha composited on white, CMYK/YCbCr converted to sRGB. Encoding picks
the format from the output suffix and writes provenance (model, weights hash, or
the UNTRAINED marker) into the file's metadata. No storage access here: callers
pass bytes (see :mod:`colorstyle_core.storage`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from colorstyle_core.color import to_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
_FORMAT_BY_SUFFIX = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}


_EXIF_ORIENTATION = 0x0112


class ImageDecodeError(ValueError):
    """The bytes are not a readable image; the message names the file and the problem."""


class ImageTooLargeError(ImageDecodeError):
    """The image's header declares more pixels than the limit allows (refused before decoding)."""


# Pillow refuses images above 2 x Image.MAX_IMAGE_PIXELS (~179 megapixels) with its own
# error; colorstyle checks the header's size against its own, configurable limit instead.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class DecodedImage:
    """A decoded still.

    Attributes:
        pixels: ``(H, W, C)`` float32 in ``[0, 1]``; C = 1 for grayscale sources, 3 otherwise
            (uint8 when :func:`decode_image` was asked to keep 8-bit sources at 8 bits).
        source_mode: Pillow mode of the file (``"L"``, ``"I;16"``, ``"RGBA"``, ``"P"``, ...).
        notes: conversions applied (e.g. ``"alpha composited on white"``), for logs.
    """

    pixels: np.ndarray
    source_mode: str
    notes: tuple[str, ...] = ()


def _alpha_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding the pixels.

    Raises:
        ImageDecodeError: empty, or not an image.
    """
    if not data:
        raise ImageDecodeError(f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{name}: not a recognised image format ({len(data)} bytes)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({e})") from None


def decode_image(data: bytes, name: str, max_pixels: int | None = None,
                 limit_name: str = "max_pixels", keep_uint8: bool = False) -> DecodedImage:
    """Decode image bytes.

    Args:
        data: the file's content.
        name: file name or URI, used in error messages.
        max_pixels: refuse images whose header declares more pixels (decompression bombs,
            scans too large for the memory budget) before decoding anything.
        limit_name: the setting that raises the limit, for the message (``execution.max_pixels``).
        keep_uint8: return 8-bit sources as uint8 (a quarter of the memory of float32; large scans).
    Returns:
        The pixels and what was converted.
    Raises:
        ImageTooLargeError: above ``max_pixels``; the message names the size, the limit and ``limit_name``.
        ImageDecodeError: empty file, not an image (e.g. text named ``.jpg``), truncated
            or corrupt data; the message names ``name``.
    """
    width, height = image_size(data, name)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.1f} megapixels ({limit_name}); raise {limit_name} to process it")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{name}: not a recognised image format ({len(data)} bytes)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({e})") from None
    notes: list[str] = []
    mode = img.mode
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
            notes.append(f"EXIF orientation {orientation} applied")
    except Exception:  # a broken EXIF block must not lose the picture
        notes.append("unreadable EXIF ignored")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        pixels = (np.clip(arr, 0, scale) / scale).astype(np.float32)[..., None]
        notes.append(f"{mode} read at {16 if scale > 255 else 8}-bit precision")
        return DecodedImage(pixels, mode, tuple(notes))
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        top = 1.0 if arr.max() <= 1.0 else 255.0 if arr.max() <= 255.0 else 65535.0
        return DecodedImage(np.clip(arr / top, 0, 1)[..., None], mode, (*notes, "float image scaled to [0, 1]"))
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        img = _alpha_on_white(img)
        notes.append("alpha composited on white")
    elif mode == "P":
        img = img.convert("RGB")
        notes.append("palette expanded")
    elif mode == "1":
        img = img.convert("L")
    elif mode not in ("L", "RGB"):
        img = img.convert("RGB")
        notes.append(f"{mode} converted to RGB")
    arr = np.asarray(img, dtype=np.uint8)
    del img  # large scans: free Pillow's copy before the float one exists
    if keep_uint8:
        return DecodedImage(arr if arr.ndim == 3 else arr[..., None], mode, tuple(notes))
    pixels = arr.astype(np.float32)
    del arr
    np.divide(pixels, np.float32(255.0), out=pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return DecodedImage(pixels, mode, tuple(notes))


def format_for(path: str) -> str:
    """Pillow format name for an output path, from its suffix.

    Raises:
        ValueError: for a suffix colorstyle cannot write.
    """
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    try:
        return _FORMAT_BY_SUFFIX[suffix]
    except KeyError:
        raise ValueError(
            f"{path}: cannot tell the image format from suffix {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}"
        ) from None


def encode_image(rgb: np.ndarray, path: str, description: str = "") -> bytes:
    """Encode an 8-bit image for ``path``'s format, with ``description`` in its metadata.

    PNG: tEXt ``Description``; JPEG: quality 95, 4:4:4 chroma, COM segment; WebP:
    quality 95, EXIF ImageDescription; TIFF: ImageDescription tag.

    Args:
        rgb: ``(H, W, 3)`` or ``(H, W)`` uint8.
        path: output name or URI (only its suffix is used).
        description: provenance text (e.g. ``"colorstyle eccv16 weights=sha256:..."``).
    Returns:
        The encoded file.
    Raises:
        ValueError: unknown suffix or a non-uint8 array.
    """
    if rgb.dtype != np.uint8:
        raise ValueError(f"encode_image expects uint8 pixels, got {rgb.dtype}")
    fmt = format_for(path)
    img = Image.fromarray(rgb)
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if description:
            info.add_text("Description", description)
        img.save(buf, fmt, pnginfo=info, compress_level=6)
    elif fmt == "JPEG":
        img.save(buf, fmt, quality=95, subsampling=0, comment=description.encode())
    elif fmt == "WEBP":
        exif = Image.Exif()
        if description:
            exif[270] = description  # ImageDescription
        img.save(buf, fmt, quality=95, exif=exif.tobytes())
    elif fmt == "TIFF":
        img.save(buf, fmt, description=description, compression="tiff_deflate")
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def image_description(data: bytes) -> str:
    """The provenance text :func:`encode_image` wrote ("" when there is none)."""
    img = Image.open(io.BytesIO(data))
    text = img.info.get("Description") or img.info.get("comment") or ""
    if not text:
        text = img.getexif().get(270, "")
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)


def to_tensor(pixels: np.ndarray, copy: bool = True) -> torch.Tensor:
    """``(H, W, C)`` array -> ``(1, C, H, W)`` tensor of the same dtype (float32, or uint8 from ``keep_uint8``).

    A copy, safe to modify; ``copy=False`` shares the array's memory (large scans: read only).
    """
    with warnings.catch_warnings():  # a read-only array (Pillow's buffer) is fine: the tensor is only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        t = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    return t.clone(memory_format=torch.contiguous_format) if copy else t


def frame_tensor(rgb: np.ndarray) -> torch.Tensor:
    """A decoded ``(H, W, 3)`` uint8 video frame as ``(1, 3, H, W)`` float32 in ``[0, 1]``, contiguous
    (planar: the colour maths over whole frames runs about 1.3x faster, compiled 3x, than on interleaved pixels)."""
    return frames_float(torch.from_numpy(rgb).permute(2, 0, 1)[None])


def frames_rgb8(rgbs: Sequence[np.ndarray]) -> torch.Tensor:
    """Decoded ``(H, W, 3)`` uint8 video frames as one ``(N, 3, H, W)`` uint8 batch in channels-last memory
    (one copy, the decoder's layout kept): what :meth:`~colorstyle_core.pipeline.FramePipeline.process`
    takes to colorize frames in one pass per pixel, or turns into :func:`frames_float`.

    Raises:
        ValueError: no frames, or frames of different sizes.
    """
    if not rgbs or any(r.shape != rgbs[0].shape for r in rgbs):
        raise ValueError(f"frames_rgb8 needs frames of one size, got {[r.shape for r in rgbs]}")
    return torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2)


def frames_float(frames: torch.Tensor) -> torch.Tensor:
    """An ``(N, 3, H, W)`` uint8 batch (:func:`frames_rgb8`) as ``(N, 3, H, W)`` float32 in ``[0, 1]``, planar:
    the values and layout of :func:`frame_tensor` (float tensors are returned as they are)."""
    if frames.dtype != torch.uint8:
        return frames
    return frames.contiguous().float().div_(255.0)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` or ``(1, 3, H, W)`` float in [0, 1] (rounded) or uint8 (as is) -> ``(H, W, 3)`` uint8.

    The array is C-contiguous: PyAV and Pillow copy a strided one pixel by pixel on one thread
    (PyAV's ``from_ndarray`` of a 1080p frame: 17 ms strided, 1 ms contiguous), while torch
    interleaves the channels on all of its threads.
    """
    t = images[0] if images.ndim == 4 else images
    return (t if t.dtype == torch.uint8 else to_uint8(t)).permute(1, 2, 0).contiguous().cpu().numpy()
