"""The H.264 encoders a job can use and their settings: x264 on the CPU, NVENC on NVIDIA GPUs.

``output.video_encoder: auto`` takes NVENC on CUDA actors where FFmpeg's NVENC opens (PyAV's
wheels include it; it needs an NVIDIA GPU and driver) and x264 everywhere else.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import av

H264_ENCODERS = ("libx264", "h264_nvenc")
"""The H.264 encoders a job can use: x264 on the CPU, NVENC on NVIDIA GPUs."""

_NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
                  "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}
"""x264 preset -> the NVENC preset of about the same place on the speed/quality scale (FFmpeg's p1..p7)."""


@functools.cache
def encoder_works(name: str) -> bool:
    """Whether PyAV's FFmpeg has the encoder ``name`` and it opens on this machine.

    NVENC is compiled into the PyAV wheels but opens only with an NVIDIA GPU and driver
    (elsewhere ``avcodec_open2`` fails), so this tries a small encoder once per process.
    """
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        ctx.open()
        return True
    except Exception:  # noqa: BLE001 - not compiled in, no device, no driver: all mean "not here"
        return False


def h264_encoder(request: str, cuda: bool) -> tuple[str, str | None]:
    """The H.264 encoder to use for ``output.video_encoder``, and a note when the request could not be met.

    Args:
        request: ``auto`` (NVENC on a CUDA actor where it opens, else x264), ``libx264`` or ``h264_nvenc``
            (x264 where NVENC does not open here).
        cuda: whether the actor computes on a CUDA device.
    Returns:
        ``(encoder, note)``: one of :data:`H264_ENCODERS`, and ``None`` or why it is not the one asked for.
    Raises:
        ValueError: an unknown request.
    """
    if request not in ("auto", *H264_ENCODERS):
        raise ValueError(f"unknown video encoder {request!r}; use auto, {', '.join(H264_ENCODERS)}")
    if request == "libx264" or (request == "auto" and not cuda):
        return "libx264", None
    if encoder_works("h264_nvenc"):
        return "h264_nvenc", None
    if request == "auto":
        return "libx264", None
    return "libx264", "h264_nvenc does not open on this machine (no NVIDIA GPU or driver): encoding with libx264"


def h264_options(encoder: str, crf: int, preset: str, threads: int, *, bframes: bool) -> dict[str, str]:
    """Encoder options for constant quality ``crf`` at about the speed of x264's ``preset``.

    Args:
        encoder: one of :data:`H264_ENCODERS`.
        crf: H.264 quality (0 lossless .. 51); preset: x264 speed preset; threads: x264 threads (0 = its choice).
        bframes: allow B-frames (only where decode order may differ from display order).

    NVENC has no CRF: its constant-quality mode (``rc=vbr``, ``cq``, no bit-rate target) takes the
    same 0-51 scale and gives files of roughly the same quality at the same number.
    """
    if encoder == "h264_nvenc":
        options = {"preset": _NVENC_PRESETS.get(preset, "p5"), "rc": "vbr", "cq": str(crf), "b": "0"}
    else:
        options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
    if not bframes:  # decode order = presentation order: ranges join by packet copy
        options["bf"] = "0"
    return options
