"""Single-image commands: ``colorstyle colorize`` and ``colorstyle stylize``.

Thin: parse arguments, read and decode, run the frame pipeline
(:class:`colorstyle_core.pipeline.FramePipeline`, the same code a job runs), encode and write.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging

import numpy as np
import torch

from colorstyle_core import color, imageio, loader, storage
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.colorizers.deepexemplar import NAME as EXEMPLAR_MODEL
from colorstyle_core.hints import ColorHints, keyframe_hints, parse_hints
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import (
    DEFAULT_MAX_PIXELS,
    LARGE_IMAGE_PIXELS,
    ColorizeStep,
    FrameResult,
    PipelineConfig,
    StylizeStep,
)
from colorstyle_core.provenance import mark_untrained_logs
from colorstyle_core.resample import band_as_float
from colorstyle_core.style.gatys import StyleConfig
from colorstyle_core.style.methods import METHODS
from colorstyle_core.synthetic import UNTRAINED_NOTE
from colorstyle_core.timing import Stage
from colorstyle_core.weights import VGG_ARCHS
from jobs.cli.exemplar import cmd_colorize_exemplar

log = logging.getLogger("colorstyle")

_POINT_SUFFIXES = (".json", ".csv", ".txt")


class UsageError(ValueError):
    """A flag combination or value that cannot work; the message says which."""


def weights_source(args: argparse.Namespace) -> loader.WeightsSource:
    """The loader's source for ``--weights``, ``--weights-sha256`` and ``--storage-options``."""
    return loader.WeightsSource(args.weights, args.weights_sha256, storage.parse_options(args.storage_options))


def read_image(uri: str, opts: dict | None, max_pixels: int | None = None) -> torch.Tensor:
    """An image file (any fsspec URI) as ``(1, C, H, W)`` float32 in ``[0, 1]`` (uint8, shared memory, when large).

    Raises:
        imageio.ImageTooLargeError: above ``max_pixels`` (``--max-pixels``), before decoding.
    """
    data = storage.read_bytes(uri, opts)
    width, height = imageio.image_size(data, uri)
    large = width * height > LARGE_IMAGE_PIXELS
    decoded = imageio.decode_image(data, uri, max_pixels, "--max-pixels", keep_uint8=large)
    for note in decoded.notes:
        log.info("%s: %s", uri, note)
    return imageio.to_tensor(decoded.pixels, copy=not large)


def _process(pipeline: FramePipeline, image: torch.Tensor, hints: ColorHints | None = None) -> FrameResult:
    """One image through the pipeline: in bands when it is large (memory), else as the job does it."""
    if image.shape[-1] * image.shape[-2] > LARGE_IMAGE_PIXELS:
        return pipeline.process_large(image, hints)
    return pipeline.process([image], None if hints is None else [hints])[0]


def _announce(pipeline: FramePipeline) -> None:
    if pipeline.untrained:
        mark_untrained_logs()  # from here on every log line says so
        log.warning("%s", UNTRAINED_NOTE)


def _write_image(rgb: torch.Tensor, uri: str, opts: dict | None, pipeline: FramePipeline) -> None:
    data = imageio.encode_image(imageio.to_uint8_hwc(rgb), uri, f"colorstyle {pipeline.weights_text}")
    storage.write_bytes_atomic(uri, data, opts)


def load_hints(args: argparse.Namespace, opts: dict | None, image: torch.Tensor | None = None) -> ColorHints | None:
    """``--hints`` (points file, or a hint image with ``--hint-mask``) as :class:`ColorHints`.

    Raises:
        UsageError: a mask without a hint image, or a hint image without a mask.
        colorstyle_core.hints.HintsError: an unreadable points file.
    """
    if not args.hints:
        if args.hint_mask:
            raise UsageError("--hint-mask needs --hints HINT_IMAGE")
        return None
    if args.hints.lower().endswith(_POINT_SUFFIXES):
        parsed = parse_hints(storage.read_bytes(args.hints, opts).decode("utf-8"), args.hints)
        if len(parsed.keyframes) != 1 or parsed.keyframes[0].frame != 0:
            raise UsageError(f"{args.hints}: a still takes one keyframe, frame 0")
        keyframe = parsed.keyframes[0]
        if args.hint_patch:
            keyframe = dataclasses.replace(keyframe, patch=args.hint_patch)
        ab = mask = None
        if keyframe.image:
            ab = color.rgb_to_lab(read_image(keyframe.image, opts).expand(-1, 3, -1, -1))[:, 1:]
        if keyframe.mask:
            mask = (read_image(keyframe.mask, opts).amax(dim=1, keepdim=True) > 0).float()
        lightness = color.rgb_to_l(band_as_float(image, 0, image.shape[-2])) if image is not None else None
        return keyframe_hints(keyframe, ab, mask, lightness)
    if not args.hint_mask:
        raise UsageError(f"{args.hints}: a hint image needs --hint-mask MASK (nonzero = hint)")
    hint_rgb = read_image(args.hints, opts)
    mask = read_image(args.hint_mask, opts)
    if hint_rgb.shape[1] == 1:
        hint_rgb = hint_rgb.expand(-1, 3, -1, -1)
    dense_ab = color.rgb_to_lab(hint_rgb)[:, 1:]
    dense_mask = (mask.amax(dim=1, keepdim=True) > 0).float()
    return ColorHints(patch=args.hint_patch or 3, dense_ab=dense_ab, dense_mask=dense_mask)


def cmd_colorize(args: argparse.Namespace) -> int:
    if args.model == EXEMPLAR_MODEL:  # its own command: a folder of frames as one shot, the authors' geometry
        return cmd_colorize_exemplar(args)
    if args.reference or args.image_size:
        raise UsageError(f"--reference and --image-size are for --model {EXEMPLAR_MODEL}")
    opts = storage.parse_options(args.storage_options)
    colorizer = Colorizer.from_weights(args.model, weights_source(args), device=args.device, gamut=args.gamut,
                                       untrained_seed=args.untrained_weights)
    step = ColorizeStep(args.model, args.gamut, hint_adherence=args.hint_adherence, hint_radius=args.hint_radius)
    pipeline = FramePipeline(PipelineConfig(colorize=step), colorizer=colorizer)
    _announce(pipeline)
    colorizer.keep_network_ab = bool(args.save_ab)
    image = read_image(args.input, opts, args.max_pixels)
    hints = load_hints(args, opts, image)
    result = _process(pipeline, image, hints)
    if args.save_ab and colorizer.network_ab is not None:
        buf = io.BytesIO()
        np.save(buf, colorizer.network_ab[0].numpy().astype(np.float32))
        storage.write_bytes_atomic(args.save_ab, buf.getvalue(), opts)
    del image  # large scans: free the input before encoding the output
    log.info("colorized %s (%dx%d) in %.2f s", args.input, result.image.shape[-1], result.image.shape[-2],
             result.stages[Stage.COLORIZE] + result.stages[Stage.PREPROCESS])
    _write_image(result.image, args.output, opts, pipeline)
    print(args.output)
    return 0


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _layers(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


def style_config_from_args(args: argparse.Namespace) -> StyleConfig:
    """The :class:`StyleConfig` the ``stylize`` flags describe (defaults for flags not given).

    Raises:
        UsageError: naming the bad value.
    """
    try:
        return StyleConfig.from_options(
            steps=args.steps, optimizer=args.optimizer, lr=args.lr, content_weight=args.content_weight,
            style_weight=args.style_weight, tv_weight=args.tv_weight, preserve_color=args.preserve_color,
            style_blend=_floats(args.blend, "--blend"), init=args.init, seed=args.seed,
            content_layers=_layers(args.content_layers), style_layers=_layers(args.style_layers),
            style_scale=args.style_scale,
        )
    except ValueError as e:
        raise UsageError(f"stylize: {e}") from None


def _write_losses(curves: dict[str, list[float]], uri: str, opts: dict | None) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = list(curves)
    writer.writerow(["step", *names])
    for step in range(len(curves["total"])):
        writer.writerow([step, *(f"{curves[n][step]:.6g}" for n in names)])
    storage.write_bytes_atomic(uri, buf.getvalue().encode(), opts)


_STYLE_FLAGS = ("arch", "steps", "optimizer", "lr", "content_weight", "style_weight", "tv_weight", "style_scale",
                "init", "seed", "content_layers", "style_layers")
"""The ``stylize`` flags that are a method's own settings (``pipeline.stylize`` keys of the same names)."""


def _method_flags_check(args: argparse.Namespace) -> None:
    """Refuse flags that are another method's settings (and ``--losses-out`` for a method without losses).

    Raises:
        UsageError: naming the flags and the method they belong to.
    """
    method = METHODS.get(args.method)
    given = [name for name in _STYLE_FLAGS if getattr(args, name) is not None and name not in method.options]
    given += ["losses_out"] if args.losses_out is not None and not method.losses else []
    if given:
        owners = sorted({m.name for m in METHODS
                         if set(given) & set(m.options) or (m.losses and "losses_out" in given)})
        raise UsageError(f"stylize: {', '.join('--' + n.replace('_', '-') for n in given)} apply to --method "
                         f"{' or '.join(owners)} only")


def load_stylizer(args: argparse.Namespace, step: StylizeStep):
    """The model of the method ``--method`` names, with ``--weights`` (its checkpoint, or a prefix of its files)
    or the default weights, or generated ones (``--untrained-weights``).

    Raises:
        UsageError: a method that needs a trained model without ``--weights`` or ``--untrained-weights``.
        colorstyle_core.loader.WeightsError: weights missing or not matching their hash.
    """
    method = METHODS.get(args.method)
    if method.needs_model and args.weights is None and args.untrained_weights is None:
        raise UsageError(f"stylize --method {method.name} needs --weights: the checkpoint colorstyle train wrote")
    weights = method.weights(step, weights_source(args), args.untrained_weights is not None)
    return method.build(step, weights, untrained_seed=args.untrained_weights if weights is None else None,
                        device=args.device)


def cmd_stylize(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    _method_flags_check(args)
    method = METHODS.get(args.method)
    if len(args.paths) == 2 and not method.takes_styles:
        content, style_list, output = args.paths[0], "", args.paths[1]
    elif len(args.paths) == 3 and method.takes_styles:
        content, style_list, output = args.paths
    elif not method.takes_styles:
        raise UsageError(f"stylize --method {method.name} takes CONTENT OUTPUT: the style is the trained network's")
    else:
        raise UsageError(f"stylize --method {args.method} takes CONTENT STYLE[,STYLE2] OUTPUT")
    config = style_config_from_args(args)
    style_uris = tuple(uri for uri in style_list.split(",") if uri)
    step = StylizeStep(style_uris, config, args.arch or "vgg19", args.pooling, args.size, keep_input_size=False,
                       method=args.method)
    stylizer = load_stylizer(args, step)
    pipeline = FramePipeline(PipelineConfig(stylize=step), stylizer=stylizer,
                             styles=[read_image(uri, opts) for uri in style_uris])
    _announce(pipeline)
    image = read_image(content, opts, args.max_pixels)
    result = _process(pipeline, image)
    total = result.curves.get("total", [])
    if total:
        log.info("stylized %s at %dx%d: %d steps in %.1f s, loss %.4g -> %.4g", content, result.image.shape[-1],
                 result.image.shape[-2], len(total), result.stages[Stage.STYLIZE], total[0], total[-1])
    else:
        log.info("stylized %s at %dx%d (%s) in %.2f s", content, result.image.shape[-1], result.image.shape[-2],
                 args.method, result.stages[Stage.STYLIZE])
    _write_image(result.image, output, opts, pipeline)
    if args.losses_out:
        _write_losses(result.curves, args.losses_out, opts)
    print(output)
    return 0


def add_weight_flags(p: argparse.ArgumentParser) -> None:
    """``--weights``, ``--weights-sha256``, ``--untrained-weights``, ``--device``, ``--storage-options``."""
    p.add_argument("--weights", metavar="URI", help="checkpoint location (path or fsspec URI); "
                   "default: $COLORSTYLE_CACHE, then the published URL")
    p.add_argument("--weights-sha256", metavar="HEX", help="full sha256 of --weights when it is not the "
                   "published file (default: hash in its file name, else the published hash); deepexemplar: "
                   "FILE=HEX,FILE=HEX for the files in --weights PREFIX (or a SHA256SUMS file there)")
    p.add_argument("--untrained-weights", metavar="SEED", type=int, nargs="?", const=0, default=None,
                   help="smoke runs only: use generated UNTRAINED weights (output is marked as such)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--storage-options", metavar="JSON",
                   help='fsspec options for all URIs, e.g. \'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\'')
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse larger images from their header, before decoding (default {DEFAULT_MAX_PIXELS:,})")


def add_image_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``colorize`` and ``stylize``."""
    p = sub.add_parser("colorize", help="colorize one image (Zhang et al., DDColor; deepexemplar: a folder of "
                       "frames too)", description="Colorize one image. INPUT/OUTPUT are paths or fsspec URIs; "
                       "the output format follows OUTPUT's suffix (.png .jpg .webp .tif). With --model deepexemplar "
                       "INPUT may be a folder of numbered frames (one shot, colorized in order) and OUTPUT a folder.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", choices=COLORIZERS.names, default="eccv16",
                   help="network (default: eccv16)")
    p.add_argument("--reference", metavar="IMAGE", help=f"{EXEMPLAR_MODEL}: the colour photo whose colours to carry "
                   "over (Zhang et al., Deep Exemplar-based Video Colorization, CVPR 2019)")
    p.add_argument("--image-size", metavar="H,W", help=f"{EXEMPLAR_MODEL}: the authors' --image_size (default "
                   "432,768; the network works at half of it; multiples of 16)")
    p.add_argument("--hints", metavar="FILE", help="siggraph17 colour hints: points as JSON "
                   '({"points": [[y, x, a, b], ...]}), CSV rows y,x,a,b, a keyframes file ({"keyframes": '
                   '[{"frame": 0, "image": "tinted.jpg", "mask": "mask.png"}]}); or a hint image (with --hint-mask)')
    p.add_argument("--hint-adherence", type=float, default=1.0,
                   help="0 (the network's answer) .. 1 (hinted colours kept exactly; default)")
    p.add_argument("--hint-radius", type=float, default=24.0, help="pixels over which a hint fades (default 24)")
    p.add_argument("--hint-mask", metavar="FILE", help="mask image for a hint image: nonzero pixels are hints")
    p.add_argument("--hint-patch", type=int, default=None, help="side of each hint square at 256 px (default 3)")
    p.add_argument("--gamut", choices=("preserve-l", "clip"), default="preserve-l",
                   help="preserve-l keeps L exactly (default); clip = the model's authors' pipeline (Zhang et al.: "
                   "scikit-image's clipping; DDColor: nearest ab upsampling and OpenCV's Lab)")
    p.add_argument("--save-ab", metavar="URI", help="also write the network's ab at its own resolution "
                   "(.npy, float32, shape (2, h, w): 512 x 512 for DDColor, 256 x 256 for Zhang et al., 216 x 384 "
                   f"for {EXEMPLAR_MODEL}, whose folder inputs take a folder here: <stem>_ab.npy per frame)")
    add_weight_flags(p)
    p.set_defaults(func=cmd_colorize)

    p = sub.add_parser("stylize", help="neural style transfer of one image (Gatys, fast or arbitrary)",
                       description="Stylize CONTENT with one or more STYLE images (comma-separated): "
                       "CONTENT STYLE[,STYLE2] OUTPUT; with --method fast: CONTENT OUTPUT (the network's style).")
    p.add_argument("paths", nargs="+", metavar="CONTENT [STYLE[,STYLE2]] OUTPUT")
    p.add_argument("--method", choices=METHODS.names, default="gatys",
                   help="gatys: optimisation (best, minutes); fast: a network trained by colorstyle train "
                   "(--weights); arbitrary: Magenta's arbitrary-style networks, any painting (default: gatys)")
    p.add_argument("--arch", choices=VGG_ARCHS, default=None, help="VGG network (default: vgg19)")
    p.add_argument("--size", type=int, default=512, help="longer side of the output in px (default: 512; 0 = as is)")
    p.add_argument("--steps", type=int, help="optimiser steps (default: 300)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), help="default: lbfgs")
    p.add_argument("--lr", type=float, help="step length (default: 1.0 lbfgs, 0.02 adam)")
    p.add_argument("--content-weight", type=float, help="default: 1")
    p.add_argument("--style-weight", type=float, help="default: 1e6")
    p.add_argument("--tv-weight", type=float, help="default: 1")
    p.add_argument("--preserve-color", action="store_true", default=None,
                   help="luminance-only transfer: keep the content's colours")
    p.add_argument("--blend", metavar="W1,W2", help="blend weights of the style images (default: equal)")
    p.add_argument("--style-scale", type=float, help="style size relative to the output (default: 1.0)")
    p.add_argument("--init", choices=("content", "noise"), help="start image (default: content)")
    p.add_argument("--seed", type=int, help="seed for noise init (default: 0)")
    p.add_argument("--content-layers", metavar="L1,L2", help="default: relu4_2")
    p.add_argument("--style-layers", metavar="L1,L2", help="default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    p.add_argument("--pooling", choices=("max", "avg"), default="max", help="VGG pooling (default: max)")
    p.epilog = ("--weights: gatys: the VGG checkpoint; fast: the trained network's checkpoint; arbitrary: a "
                "prefix holding arbitrary_predict.onnx and arbitrary_transform.onnx (default: the installed copies)")
    p.add_argument("--losses-out", metavar="URI", help="write the per-step loss curve as CSV")
    add_weight_flags(p)
    p.set_defaults(func=cmd_stylize)
