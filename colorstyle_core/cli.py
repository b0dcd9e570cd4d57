"""Single-image commands: ``colorize``, ``stylize``, ``models``, ``weights``.

Thin: parse arguments, read and decode, call the library, encode and write. The
``colorstyle`` entry point (``jobs.cli``) adds the job commands to these.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from collections.abc import Sequence

import torch

from colorstyle_core import color, imageio, loader, storage
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.hints import ColorHints, HintsError, parse_points
from colorstyle_core.models import layout
from colorstyle_core.models.vgg import layer_names
from colorstyle_core.provenance import Provenance, mark_untrained_logs
from colorstyle_core.style.gatys import StyleConfig, Stylizer
from colorstyle_core.synthetic import UNTRAINED_NOTE
from colorstyle_core.weights import COLORIZERS, REGISTRY, VGG_ARCHS, get_spec

log = logging.getLogger("colorstyle")

_POINT_SUFFIXES = (".json", ".csv", ".txt")


def _weights_source(args: argparse.Namespace) -> loader.WeightsSource:
    return loader.WeightsSource(args.weights, args.weights_sha256, storage.parse_options(args.storage_options))


def _read_image(uri: str, opts: dict | None) -> torch.Tensor:
    decoded = imageio.decode_image(storage.read_bytes(uri, opts), uri)
    for note in decoded.notes:
        log.info("%s: %s", uri, note)
    return imageio.to_tensor(decoded.pixels)


def _describe(*provenances: Provenance) -> str:
    text = "colorstyle " + "; ".join(p.describe() for p in provenances)
    if any(p.untrained for p in provenances):
        text += f" -- {UNTRAINED_NOTE}"
    return text


def _warn_untrained(*provenances: Provenance) -> None:
    if any(p.untrained for p in provenances):
        mark_untrained_logs()  # from here on every log line says so
        log.warning("%s", UNTRAINED_NOTE)


def _write_image(rgb: torch.Tensor, uri: str, opts: dict | None, description: str) -> None:
    data = imageio.encode_image(imageio.to_uint8_hwc(rgb), uri, description)
    storage.write_bytes_atomic(uri, data, opts)


def _load_hints(args: argparse.Namespace, opts: dict | None) -> ColorHints | None:
    if not args.hints:
        if args.hint_mask:
            raise SystemExit("--hint-mask needs --hints HINT_IMAGE")
        return None
    if args.hints.lower().endswith(_POINT_SUFFIXES):
        hints = parse_points(storage.read_bytes(args.hints, opts).decode("utf-8"), args.hints)
        return ColorHints(points=hints.points, patch=args.hint_patch or hints.patch)
    if not args.hint_mask:
        raise SystemExit(f"{args.hints}: a hint image needs --hint-mask MASK (nonzero = hint)")
    hint_rgb = _read_image(args.hints, opts)
    mask = _read_image(args.hint_mask, opts)
    if hint_rgb.shape[1] == 1:
        hint_rgb = hint_rgb.expand(-1, 3, -1, -1)
    dense_ab = color.rgb_to_lab(hint_rgb)[:, 1:]
    dense_mask = (mask.amax(dim=1, keepdim=True) > 0).float()
    return ColorHints(patch=args.hint_patch or 3, dense_ab=dense_ab, dense_mask=dense_mask)


def cmd_colorize(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    colorizer = Colorizer.from_weights(
        args.model, _weights_source(args), device=args.device, gamut=args.gamut,
        untrained_seed=args.untrained_weights,
    )
    _warn_untrained(colorizer.provenance)
    image = _read_image(args.input, opts)
    hints = _load_hints(args, opts)
    start = time.perf_counter()
    rgb = colorizer(image, None if hints is None else [hints])
    log.info("colorized %s (%dx%d) in %.2f s", args.input, image.shape[-1], image.shape[-2],
             time.perf_counter() - start)
    _write_image(rgb, args.output, opts, _describe(colorizer.provenance))
    print(args.output)
    return 0


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"{what} must be comma-separated numbers, got {text!r}") from None


def _layers(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(v.strip() for v in text.split(",") if v.strip())


def style_config_from_args(args: argparse.Namespace) -> StyleConfig:
    """The :class:`StyleConfig` the ``stylize`` flags describe (defaults for flags not given)."""
    given = {
        "steps": args.steps,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "tv_weight": args.tv_weight,
        "preserve_color": args.preserve_color,
        "style_blend": _floats(args.blend, "--blend"),
        "init": args.init,
        "seed": args.seed,
        "content_layers": _layers(args.content_layers),
        "style_layers": _layers(args.style_layers),
        "style_scale": args.style_scale,
    }
    try:
        return StyleConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise SystemExit(f"stylize: {e}") from None


def _resize_longer(image: torch.Tensor, size: int | None) -> torch.Tensor:
    if not size:
        return image
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    hw = (max(1, round(h * scale)), max(1, round(w * scale)))
    return torch.nn.functional.interpolate(image, size=hw, mode="bicubic", antialias=True,
                                           align_corners=False).clamp(0, 1)


def _write_losses(result_losses: dict[str, torch.Tensor], uri: str, opts: dict | None) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = list(result_losses)
    writer.writerow(["step", *names])
    for step in range(result_losses["total"].shape[0]):
        writer.writerow([step, *(f"{result_losses[n][step, 0].item():.6g}" for n in names)])
    storage.write_bytes_atomic(uri, buf.getvalue().encode(), opts)


def cmd_stylize(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    config = style_config_from_args(args)
    stylizer = Stylizer.from_weights(
        args.arch, _weights_source(args), device=args.device, pooling=args.pooling,
        untrained_seed=args.untrained_weights,
    )
    _warn_untrained(stylizer.provenance)
    content = _resize_longer(_read_image(args.content, opts), args.size)
    styles = [_read_image(uri, opts) for uri in args.styles.split(",") if uri]
    start = time.perf_counter()
    result = stylizer(content, styles, config)
    total = result.losses["total"][:, 0]
    log.info("stylized %s at %dx%d: %d steps in %.1f s, loss %.4g -> %.4g", args.content,
             content.shape[-1], content.shape[-2], result.evaluations, time.perf_counter() - start,
             total[0].item() if len(total) else float("nan"), total[-1].item() if len(total) else float("nan"))
    _write_image(result.images, args.output, opts, _describe(stylizer.provenance))
    if args.losses_out:
        _write_losses(result.losses, args.losses_out, opts)
    print(args.output)
    return 0


def cmd_models_layout(args: argparse.Namespace) -> int:
    rows = layout(args.name)
    if args.json:
        print("[\n" + ",\n".join("  " + json.dumps([k, s, d]) for k, s, d in rows) + "\n]")
    else:
        for k, s, d in rows:
            print(f"{k:40s} {str(tuple(s)):24s} {d}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    for spec in REGISTRY.values():
        extra = f"  layers: {', '.join(n for n in layer_names(spec.name) if n.startswith('relu'))}" \
            if spec.kind == "vgg" else ""
        print(f"{spec.name:11s} {spec.kind:9s} {spec.reference}{extra}")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    cache = loader.default_cache_dir()
    for spec in REGISTRY.values():
        cached = (cache / spec.filename).is_file()
        print(f"{spec.name:11s} {spec.filename:42s} sha256:{spec.sha256}  {'cached' if cached else 'not cached'}"
              f"\n{'':11s} {spec.url}\n{'':11s} licence: {spec.license}")
    return 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    source = loader.WeightsSource(args.source, args.sha256, opts)
    written = loader.fetch(get_spec(args.name), args.to, source, dest_storage_options=opts)
    print(written)
    return 0


def _video_tensors(uri: str, opts: dict | None):
    """Frames of a video (any fsspec URI) as ``(1, 3, H, W)`` float tensors, streamed."""
    import numpy as np

    from colorstyle_core import video

    if storage.is_local(uri):
        source = uri.removeprefix("file://")
    else:
        fs, path = storage.filesystem(uri, opts)
        source = fs.open(path, "rb", block_size=8 << 20)
    info = video.probe(source, uri)
    for _, rgb in video.read_frames(source, info, 0, info.frame_count, uri):
        yield imageio.to_tensor(rgb.astype(np.float32) / 255.0)


def cmd_eval_video(args: argparse.Namespace) -> int:
    from colorstyle_core.temporal import measure_consistency

    opts = storage.parse_options(args.storage_options)
    seams = [int(v) for v in args.seams.split(",")] if args.seams else []
    result = measure_consistency(
        _video_tensors(args.output, opts), _video_tensors(args.input, opts), seams=seams,
        references=_video_tensors(args.reference, opts) if args.reference else None,
        method=args.flow, preset=args.preset,
    )
    report = {
        "input": args.input, "output": args.output, "reference": args.reference,
        "e_warp": result.e_warp, "e_warp_seams": result.e_warp_seams, "e_warp_inside": result.e_warp_inside,
        "reference_diff": result.reference_diff, "scene_cuts": list(result.cuts), "seams": seams,
        "pairs": len(result.per_pair), "per_pair": list(result.per_pair),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"E_warp {result.e_warp:.6g} over {len(result.per_pair) - len(result.cuts)} frame pairs "
          f"(scene cuts left out: {list(result.cuts) or 'none'}; flow {args.flow} from {args.input})")
    if seams:
        print(f"  at seams {seams}: {result.e_warp_seams:.6g}; elsewhere: {result.e_warp_inside:.6g}")
    if args.reference:
        print(f"  mean |RGB| difference to {args.reference}: {result.reference_diff:.4f} (0..1)")
    return 0


def _images_under(prefix: str, opts: dict | None) -> dict[str, str]:
    """``{relative path without suffix: URI}`` of every image under ``prefix`` (recursive)."""
    fs, root = storage.filesystem(prefix, opts)
    if not fs.exists(root):
        raise FileNotFoundError(f"{prefix}: no such file or prefix")
    paths = [root] if fs.isfile(root) else sorted(fs.find(root))
    base = root.rstrip("/") if not fs.isfile(root) else root.rsplit("/", 1)[0]
    out = {}
    for path in paths:
        if f"/{'_colorstyle'}/" in path or not path.lower().endswith(imageio.IMAGE_SUFFIXES):
            continue
        rel = path[len(base):].lstrip("/")
        out[rel.rsplit(".", 1)[0]] = storage.unstrip(fs, path)
    return out


def _rgb8(uri: str, opts: dict | None):
    pixels = imageio.decode_image(storage.read_bytes(uri, opts), uri).pixels
    return imageio.to_uint8_hwc(imageio.to_tensor(pixels).expand(-1, 3, -1, -1))


def cmd_eval_images(args: argparse.Namespace) -> int:
    from colorstyle_core import quality

    opts = storage.parse_options(args.storage_options)
    preds = _images_under(args.predictions, opts)
    refs = _images_under(args.reference, opts)
    out_dir = args.out or storage.join(args.predictions.rstrip("/"), "_colorstyle", "eval")
    rows, problems, ours, baseline = [], [], [], []
    for stem, pred_uri in preds.items():
        ref_uri = refs.get(stem)
        if ref_uri is None:
            problems.append(f"{pred_uri}: no ground truth named {stem}.* under {args.reference}")
            continue
        try:
            pred, ref = _rgb8(pred_uri, opts), _rgb8(ref_uri, opts)
            got = quality.evaluate_pair(pred, ref)
            base = quality.evaluate_pair(quality.gray_baseline(ref), ref)
        except (imageio.ImageDecodeError, ValueError, TypeError) as e:
            problems.append(f"{pred_uri}: {e}")
            continue
        for kind, diff in (("abs", quality.abs_diff_map(pred, ref)), ("clamped", quality.clamped_diff_map(pred, ref))):
            uri = storage.join(out_dir, "diffs", f"{stem}.{kind}.png")
            storage.write_bytes_atomic(uri, imageio.encode_image(diff, uri), opts)
        ours.append(got)
        baseline.append(base)
        rows.append({"image": stem, "prediction": pred_uri, "reference": ref_uri, **got.__dict__,
                     "baseline_psnr": base.psnr, "baseline_ssim": base.ssim, "baseline_ab_error": base.ab_error,
                     "baseline_colorfulness": base.colorfulness_pred})
    if not rows:
        print(f"colorstyle: error: no prediction under {args.predictions} has a ground truth under {args.reference}",
              file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 2
    summary = {"predictions": args.predictions, "reference": args.reference, "images": len(rows),
               "unmatched_or_failed": problems, "prediction": quality.aggregate(ours),
               "grey_baseline": quality.aggregate(baseline)}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    storage.write_bytes_atomic(storage.join(out_dir, "quality.csv"), buf.getvalue().encode(), opts)
    storage.write_bytes_atomic(storage.join(out_dir, "summary.json"),
                               json.dumps(summary, indent=2, default=float).encode(), opts)
    if args.json:
        print(json.dumps({"summary": summary, "images": rows}, indent=2, default=float))
        return 0
    print(f"{'image':32s} {'PSNR dB':>8s} {'SSIM':>6s} {'ab err':>7s} {'CF pred':>8s} {'CF ref':>7s} {'dCF':>7s}")
    for r in rows:
        print(f"{r['image'][:32]:32s} {r['psnr']:8.2f} {r['ssim']:6.3f} {r['ab_error']:7.2f} "
              f"{r['colorfulness_pred']:8.2f} {r['colorfulness_ref']:7.2f} {r['delta_colorfulness']:7.2f}")
    for name, agg in (("prediction", summary["prediction"]), ("grey baseline", summary["grey_baseline"])):
        for stat in ("mean", "median"):
            print(f"{name + ' ' + stat:32s} {agg['psnr'][stat]:8.2f} {agg['ssim'][stat]:6.3f} "
                  f"{agg['ab_error'][stat]:7.2f} {agg['colorfulness_pred'][stat]:8.2f} "
                  f"{agg['colorfulness_ref'][stat]:7.2f} {agg['delta_colorfulness'][stat]:7.2f}")
    for p in problems:
        print(f"  skipped: {p}")
    print(f"written: {storage.join(out_dir, 'quality.csv')}, summary.json, diffs/ (abs and clamped diff maps)")
    return 0


def _add_weight_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="URI", help="checkpoint location (path or fsspec URI); "
                   "default: $COLORSTYLE_CACHE, then the published URL")
    p.add_argument("--weights-sha256", metavar="HEX", help="full sha256 of --weights when it is not the "
                   "published file (default: hash in its file name, else the published hash)")
    p.add_argument("--untrained-weights", metavar="SEED", type=int, nargs="?", const=0, default=None,
                   help="smoke runs only: use generated UNTRAINED weights (output is marked as such)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--storage-options", metavar="JSON",
                   help='fsspec options for all URIs, e.g. \'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\'')


def add_core_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``colorize``, ``stylize``, ``models`` and ``weights`` on a subparser set."""
    p = sub.add_parser("colorize", help="colorize one image (Zhang et al.)",
                       description="Colorize one image. INPUT/OUTPUT are paths or fsspec URIs; "
                       "the output format follows OUTPUT's suffix (.png .jpg .webp .tif).")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", choices=COLORIZERS, default="eccv16", help="network (default: eccv16)")
    p.add_argument("--hints", metavar="FILE", help="siggraph17 colour hints: points as JSON "
                   '({"points": [[y, x, a, b], ...]}) or CSV rows y,x,a,b; or a hint image (with --hint-mask)')
    p.add_argument("--hint-mask", metavar="FILE", help="mask image for a hint image: nonzero pixels are hints")
    p.add_argument("--hint-patch", type=int, default=None, help="side of each hint square at 256 px (default 3)")
    p.add_argument("--gamut", choices=("preserve-l", "clip"), default="preserve-l",
                   help="out-of-gamut colours: preserve-l keeps L exactly (default); clip = authors' demo")
    _add_weight_flags(p)
    p.set_defaults(func=cmd_colorize)

    p = sub.add_parser("stylize", help="neural style transfer of one image (Gatys et al.)",
                       description="Stylize CONTENT with one or more STYLE images (comma-separated).")
    p.add_argument("content")
    p.add_argument("styles", metavar="STYLE[,STYLE2]")
    p.add_argument("output")
    p.add_argument("--arch", choices=VGG_ARCHS, default="vgg19", help="VGG network (default: vgg19)")
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
    p.add_argument("--losses-out", metavar="URI", help="write the per-step loss curve as CSV")
    _add_weight_flags(p)
    p.set_defaults(func=cmd_stylize)

    models = sub.add_parser("models", help="network architectures").add_subparsers(dest="models_cmd", required=True)
    p = models.add_parser("layout", help="print a checkpoint's state_dict layout")
    p.add_argument("name", choices=list(REGISTRY))
    p.add_argument("--json", action="store_true", help="as [[key, [shape...], dtype], ...]")
    p.set_defaults(func=cmd_models_layout)
    p = models.add_parser("list", help="list the architectures")
    p.set_defaults(func=cmd_models_list)

    evaluate = sub.add_parser("eval", help="measure results").add_subparsers(dest="eval_cmd", required=True)
    p = evaluate.add_parser("video", help="temporal consistency: warping error E_warp (Lai et al. 2018)",
                            description="E_warp of OUTPUT with optical flow and occlusion masks from INPUT (mean "
                            "over consecutive frame pairs of the masked squared difference between a frame and the "
                            "next one warped back; scene cuts left out), optionally at frame-range seams and "
                            "against a per-frame reference.")
    p.add_argument("input", help="the source video (gives flow and masks)")
    p.add_argument("output", help="the processed video")
    p.add_argument("--reference", metavar="VIDEO", help="e.g. the per-frame result: report the mean difference")
    p.add_argument("--seams", metavar="F1,F2", help="first frames of work units, to report E_warp at the seams")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis")
    p.add_argument("--preset", choices=("ultrafast", "fast", "medium"), default="medium")
    p.add_argument("--json", action="store_true", help="print a JSON report (with every pair's error)")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec options for the URIs")
    p.set_defaults(func=cmd_eval_video)

    p = evaluate.add_parser("images", help="colorization quality against ground truth: PSNR, SSIM, ab error, "
                            "colourfulness, with the grey baseline and diff maps",
                            description="Compare every image under PREDICTIONS with the image of the same relative "
                            "path (any image suffix) under --reference. PSNR (dB, RGB, 8-bit range), SSIM (RGB, "
                            "scikit-image defaults: 7x7 uniform window, mean over channels), mean ab error (CIE Lab), "
                            "colourfulness (Hasler & Suesstrunk 2003, RGB 0..255) and its difference, for the "
                            "predictions and for the grey baseline (same L, ab = 0); abs and clamped diff maps.")
    p.add_argument("predictions", help="prefix (or file) of colorized images")
    p.add_argument("--reference", required=True, help="prefix of ground-truth colour images")
    p.add_argument("--out", metavar="URI", help="where to write quality.csv, summary.json and diffs/ "
                   "(default: PREDICTIONS/_colorstyle/eval)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec options for the URIs")
    p.set_defaults(func=cmd_eval_images)

    weights = sub.add_parser("weights", help="published weights: list, stage").add_subparsers(
        dest="weights_cmd", required=True)
    p = weights.add_parser("list", help="list the weight sets, their URLs, hashes and cache state")
    p.set_defaults(func=cmd_weights_list)
    p = weights.add_parser("fetch", help="verify a checkpoint and copy it into a cache dir or bucket",
                           description="Resolve NAME (--from URI, else the cache, else the published URL), "
                           "verify its sha256 and write it to --to (a directory/prefix or a .pth URI).")
    p.add_argument("name", choices=list(REGISTRY))
    p.add_argument("--to", required=True, metavar="URI", help="e.g. ~/.cache/colorstyle or s3://bucket/weights/")
    p.add_argument("--from", dest="source", metavar="URI", help="take the file from here instead")
    p.add_argument("--sha256", metavar="HEX", help="full sha256 of --from when it is not the published file")
    p.add_argument("--storage-options", metavar="JSON", help="fsspec options for --from/--to")
    p.set_defaults(func=cmd_weights_fetch)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command, turning expected failures into one clear line and exit code 2."""
    try:
        return args.func(args)
    except (loader.WeightsError, imageio.ImageDecodeError, HintsError, storage.StorageError,
            FileNotFoundError, ValueError) as e:  # VideoError is a ValueError
        print(f"colorstyle: error: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m colorstyle_core.cli``: the single-image commands alone."""
    parser = argparse.ArgumentParser(prog="colorstyle")
    add_core_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
