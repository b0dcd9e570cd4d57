"""``colorstyle eval``: measure results against their inputs or ground truth.

``eval video``: temporal consistency (E_warp, Lai et al. 2018) of an output video with
flow and masks from its input; ``eval images``: colorization quality against ground
truth (PSNR, SSIM, ab error, colourfulness) beside the grey baseline, with diff maps.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys

import numpy as np

from colorstyle_core import imageio, quality, storage
from colorstyle_core.video import probe, read_frames
from colorstyle_core.video_metrics import measure_consistency
from jobs.paths import CONTROL_DIR


def _video_tensors(uri: str, opts: dict | None):
    """Frames of a video (any fsspec URI) as ``(1, 3, H, W)`` float tensors, streamed."""
    with storage.open_source(uri, opts) as source:
        info = probe(source, uri)
        for _, rgb in read_frames(source, info, 0, info.frame_count, uri):
            yield imageio.to_tensor(rgb.astype(np.float32) / 255.0)


def strict_json(value: object) -> object:
    """Plain data with every non-finite float (NaN, infinity) as ``None``: JSON any parser reads."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def cmd_eval_video(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    seams = [int(v) for v in args.seams.split(",")] if args.seams else []
    preset = None if args.flow == "farneback" else args.preset
    result = measure_consistency(
        _video_tensors(args.output, opts), _video_tensors(args.input, opts), seams=seams,
        references=_video_tensors(args.reference, opts) if args.reference else None,
        method=args.flow, preset=preset,
    )
    ratio = result.e_warp / result.reference_e_warp if result.reference_e_warp > 0 else math.nan
    image_cf = quality.colorfulness(_rgb8(args.reference_image, opts)) if args.reference_image else math.nan
    reference_cf = result.reference_colourfulness if args.reference else image_cf
    report = {
        "input": args.input, "output": args.output, "reference": args.reference,
        "flow": {"method": result.method, "preset": result.preset},
        "frames": result.frames, "pairs": result.pairs_used, "pairs_total": len(result.per_pair),
        "scene_cuts": list(result.cuts), "seams": seams,
        "e_warp": result.e_warp, "e_warp_seams": result.e_warp_seams, "e_warp_inside": result.e_warp_inside,
        "valid_mask_fraction": result.trusted,
        "reference_diff": result.reference_diff, "reference_e_warp": result.reference_e_warp,
        "e_warp_ratio_to_reference": ratio,
        "cdc": result.cdc, "cdc_without_cuts": result.cdc_without_cuts, "colourfulness": result.colourfulness,
        "input_cdc": result.input_cdc, "input_colourfulness": result.input_colourfulness,
        "reference_cdc": result.reference_cdc, "reference_colourfulness": result.reference_colourfulness,
        "reference_image": args.reference_image, "reference_image_colourfulness": image_cf,
        "delta_colourfulness": result.colourfulness - reference_cf,
        "per_pair": list(result.per_pair),
    }
    if args.json:
        print(json.dumps(strict_json(report), indent=2, allow_nan=False))
        return 0
    print(f"E_warp {result.e_warp:.6g} over {result.pairs_used} of {len(result.per_pair)} frame pairs of "
          f"{result.frames} frames (scene cuts left out: {list(result.cuts) or 'none'}; flow {result.method}"
          f"{' ' + result.preset if result.preset else ''} from {args.input}; "
          f"{100 * result.trusted:.1f}% of pixels trusted by the masks)")
    if seams:
        print(f"  at seams {seams}: {result.e_warp_seams:.6g}; elsewhere: {result.e_warp_inside:.6g}")
    print(f"CDC {result.cdc:.6g} (TCVC: every pair of frames 1, 2 and 4 apart); {result.cdc_without_cuts:.6g} "
          f"without the pairs across scene cuts; colourfulness {result.colourfulness:.2f} "
          f"(the input's: CDC {result.input_cdc:.6g}, colourfulness {result.input_colourfulness:.2f})")
    if args.reference:
        print(f"  reference {args.reference}: E_warp {result.reference_e_warp:.6g} with the same flow "
              f"(ratio {ratio:.3f}); mean |RGB| difference {result.reference_diff:.4f} (0..1); CDC "
              f"{result.reference_cdc:.6g}, colourfulness {result.reference_colourfulness:.2f}")
    if args.reference_image:
        print(f"  reference image {args.reference_image}: colourfulness {image_cf:.2f}")
    if args.reference or args.reference_image:
        print(f"  delta colourfulness (output - {'reference' if args.reference else 'reference image'}): "
              f"{result.colourfulness - reference_cf:+.2f}")
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
        if f"/{CONTROL_DIR}/" in path or not path.lower().endswith(imageio.IMAGE_SUFFIXES):
            continue
        rel = path[len(base):].lstrip("/")
        out[rel.rsplit(".", 1)[0]] = storage.unstrip(fs, path)
    return out


def _rgb8(uri: str, opts: dict | None):
    pixels = imageio.decode_image(storage.read_bytes(uri, opts), uri).pixels
    return imageio.to_uint8_hwc(imageio.to_tensor(pixels).expand(-1, 3, -1, -1))


def cmd_eval_images(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    preds = _images_under(args.predictions, opts)
    refs = _images_under(args.reference, opts)
    out_dir = args.out or storage.join(args.predictions.rstrip("/"), CONTROL_DIR, "eval")
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
        print(json.dumps(strict_json({"summary": summary, "images": rows}), indent=2, default=float, allow_nan=False))
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




def add_eval_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``eval video`` and ``eval images``."""
    evaluate = sub.add_parser("eval", help="measure results").add_subparsers(dest="eval_cmd", required=True)
    p = evaluate.add_parser("video", help="a video's temporal consistency and colour: E_warp (Lai et al. 2018), "
                            "CDC (TCVC 2021), colourfulness (Hasler & Suesstrunk 2003)",
                            description="E_warp of OUTPUT with optical flow and occlusion masks from INPUT (mean "
                            "over consecutive frame pairs of the masked squared difference between a frame and the "
                            "next one warped back; scene cuts left out), optionally at frame-range seams and "
                            "against a per-frame reference; CDC, colour distribution consistency (Jensen-Shannon "
                            "divergence of per-channel colour histograms of frames 1, 2 and 4 apart, as TCVC's "
                            "calculate_cdc; also without the pairs across scene cuts); mean colourfulness per frame; "
                            "the same for INPUT and the reference.")
    p.add_argument("input", help="the source video (gives flow and masks)")
    p.add_argument("output", help="the processed video")
    p.add_argument("--reference", metavar="VIDEO", help="e.g. the per-frame result: its mean difference, E_warp, CDC "
                   "and colourfulness, and delta colourfulness against it")
    p.add_argument("--reference-image", metavar="IMAGE", help="a colour image (a period photo of the scene): delta "
                   "colourfulness against it (when no --reference video is given)")
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

