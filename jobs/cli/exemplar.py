"""``colorstyle colorize --model deepexemplar``: colour from a reference photo, for a still or a folder of frames.

A folder (local or an object-store prefix) of numbered frames (PNG, TIFF incl. 16-bit, JPEG) is
one shot: its frames are colorized in their numeric order as one chain (each frame gets the
previous frame's output, :mod:`colorstyle_core.exemplar`) and written to OUTPUT under the same
names. A single image is a still (a chain of one).
"""

from __future__ import annotations

import argparse
import io
import logging

import numpy as np

from colorstyle_core import imageio, storage
from colorstyle_core.colorizers.deepexemplar import NAME as EXEMPLAR_MODEL
from colorstyle_core.colorizers.deepexemplar import parse_file_hashes
from colorstyle_core.exemplar import ChainState, ExemplarColorizer
from colorstyle_core.sequences import list_frames
from colorstyle_core.synthetic import UNTRAINED_NOTE

log = logging.getLogger("colorstyle")


def _read_rgb(uri: str, opts: dict | None, max_pixels: int | None) -> np.ndarray:
    """``(H, W, 3)`` float32 in ``[0, 1]`` (gray sources repeated to three channels)."""
    decoded = imageio.decode_image(storage.read_bytes(uri, opts), uri, max_pixels, "--max-pixels")
    pixels = decoded.pixels.astype(np.float32, copy=False)
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def load(args: argparse.Namespace, opts: dict | None) -> ExemplarColorizer:
    """The colorizer from ``--weights PREFIX`` (or ``--untrained-weights``), ``--gamut``, ``--image-size``.

    Raises:
        ValueError: no weights given, or a bad ``--image-size``.
        colorstyle_core.loader.WeightsError: a checkpoint missing, without a hash, corrupt or of another layout.
    """
    size = tuple(int(v) for v in args.image_size.split(",")) if args.image_size else None
    kwargs = {"gamut": args.gamut, "device": args.device}  # "auto": resolve_device's choice
    if size:
        if len(size) != 2:
            raise ValueError(f"--image-size {args.image_size!r}: give HEIGHT,WIDTH")
        kwargs["image_size"] = size
    if args.untrained_weights is not None:
        log.warning("%s", UNTRAINED_NOTE)
        return ExemplarColorizer.from_seed(args.untrained_weights, **kwargs)
    if not args.weights:
        raise ValueError(f"--model {EXEMPLAR_MODEL} needs --weights PREFIX: the folder holding the authors' "
                         "vgg19_conv.pth, nonlocal_net_iter_76000.pth and colornet_iter_76000.pth")
    sha256 = parse_file_hashes(args.weights_sha256, "--weights-sha256")
    return ExemplarColorizer.from_prefix(args.weights, sha256, opts, **kwargs)


def cmd_colorize_exemplar(args: argparse.Namespace) -> int:
    """``colorstyle colorize INPUT OUTPUT --model deepexemplar --reference REF ...``."""
    opts = storage.parse_options(args.storage_options)
    if not args.reference:
        raise ValueError(f"--model {EXEMPLAR_MODEL} needs --reference REF (a colour photo whose colours to carry "
                         "over)")
    if args.hints:
        raise ValueError(f"--model {EXEMPLAR_MODEL} takes a --reference, not --hints")
    colorizer = load(args, opts)
    colorizer.keep_network_ab = bool(args.save_ab)
    reference = colorizer.reference(_read_rgb(args.reference, opts, args.max_pixels), args.reference)
    folder = storage.is_dir(args.input, opts)
    frames = list_frames(args.input, opts) if folder else [args.input]
    state = ChainState()
    for uri in frames:
        out = colorizer.colorize(_read_rgb(uri, opts, args.max_pixels), reference, state)
        name = storage.basename(uri)
        target = storage.join(args.output, name) if folder else args.output
        data = imageio.encode_image(out, target, f"colorstyle {EXEMPLAR_MODEL} {colorizer.weights_tag} "
                                    f"reference={args.reference}")
        storage.write_bytes_atomic(target, data, opts)
        if args.save_ab:
            buf = io.BytesIO()
            np.save(buf, colorizer.network_ab[0].numpy().astype(np.float32))
            stem = name.rsplit(".", 1)[0]
            ab_uri = storage.join(args.save_ab, f"{stem}_ab.npy") if folder else args.save_ab
            storage.write_bytes_atomic(ab_uri, buf.getvalue(), opts)
        print(target)
    return 0

