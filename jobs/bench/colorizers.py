"""``python -m jobs.bench.colorizers``: the colorizers side by side, and how DDColor's ab should be upsampled.

1. **Cost**: each colorizer (ECCV16, SIGGRAPH17, DDColor-T, DDColor-L, Deep Exemplar) through the job's frame
   pipeline on the same grey photos, one image at a time, on the same device and threads:
   seconds per image end to end and for the network alone, parameters, checkpoint size,
   network input size. Generated weights of the published layouts (the same arithmetic as
   the real ones), so it runs anywhere.
2. **Upsampling** (``--upsampling``): DDColor predicts ab at 512 x 512; its authors bring it back
   to the photo's size with nearest-neighbour, colorstyle's default with bilinear. On real
   colour photographs the true ab is brought to 512 x 512 (anti-aliased, as an ideal
   network's prediction would be band-limited), upsampled both ways, joined with the
   original L, and compared with the photo: mean CIE76 colour error over all pixels and
   over edge pixels (the 10 % with the largest L gradient), at the photo's size and at
   2x and 4x (scans larger than the network's input). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from colorstyle_core import color
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.exemplar import ChainState
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig
from jobs.bench import SHARED_DATA
from jobs.cli.images import read_image

SHARED = SHARED_DATA
MODELS = ("eccv16", "siggraph17", "ddcolor_paper_tiny", "ddcolor_paper", "deepexemplar")
"""The default models: every architecture of :data:`COLORIZERS` once (``ddcolor_modelscope`` and ``ddcolor_artistic``
are ``ddcolor_paper``'s network with other weights: the same cost)."""


def bench_exemplar(name: str, images: list[torch.Tensor], device: str) -> dict[str, object]:
    """A colorizer that takes a reference (``deepexemplar``) as a job runs it (the job's reference prepared once;
    each image a chain of one; a film's frame costs the same: one step of its chain): seconds per image, and its
    three networks alone."""
    reference = read_image(str(sorted((SHARED / "color").glob("*.jpg"))[0]), None)[0]
    step = ColorizeStep(name, reference="reference")
    pipeline = FramePipeline.build(PipelineConfig(colorize=step), untrained_seed=0, device=device,
                                   reference=reference.permute(1, 2, 0).contiguous().numpy())
    colorizer = pipeline.colorizer
    pipeline.process(images[:1])
    start = time.perf_counter()
    for image in images:
        pipeline.process([image])
    per_image = (time.perf_counter() - start) / len(images)
    l_work = torch.zeros(1, 1, *colorizer.work_size, device=colorizer.device)
    start = time.perf_counter()
    for _ in images:
        colorizer.network(l_work, colorizer.job_reference, ChainState())
    if colorizer.device.type == "cuda":
        torch.cuda.synchronize()
    network = (time.perf_counter() - start) / len(images)
    params = sum(t.numel() for net in (colorizer.vgg, colorizer.warpnet, colorizer.colornet)
                 for t in net.state_dict().values())
    return {"model": name, "params_m": params / 1e6, "checkpoint_mb": params * 4 / 1e6,
            "input": "x".join(str(v) for v in colorizer.work_size), "s_per_image": per_image,
            "network_s_per_image": network}


def bench_cost(photos: list[Path], models: tuple[str, ...], device: str) -> list[dict[str, object]]:
    """Per model: seconds per image (pipeline and network alone), parameters, input size."""
    images = [read_image(str(p), None) for p in photos]
    rows = []
    for name in models:
        if COLORIZERS.get(name).takes_reference:
            rows.append(bench_exemplar(name, images, device))
            continue
        pipeline = FramePipeline.build(PipelineConfig(colorize=ColorizeStep(name)), untrained_seed=0, device=device)
        colorizer = pipeline.colorizer
        pipeline.process(images[:1])  # warm-up: first calls allocate
        start = time.perf_counter()
        for image in images:
            pipeline.process([image])
        per_image = (time.perf_counter() - start) / len(images)
        with torch.inference_mode():
            net_in = colorizer.network_input(images[0])
            start = time.perf_counter()
            for _ in images:
                colorizer.net(net_in)
            if colorizer.device.type == "cuda":
                torch.cuda.synchronize()
            network = (time.perf_counter() - start) / len(images)
        params = sum(t.numel() for t in colorizer.net.state_dict().values())
        rows.append({"model": name, "params_m": params / 1e6, "checkpoint_mb": params * 4 / 1e6,
                     "input": "x".join(str(v) for v in colorizer.net_size),
                     "s_per_image": per_image, "network_s_per_image": network})
    return rows


def _edges(lightness: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """Mask of the ``fraction`` of pixels with the largest L gradient magnitude, ``(1, 1, H, W)`` bool."""
    gy = F.pad(lightness[..., 1:, :] - lightness[..., :-1, :], (0, 0, 0, 1))
    gx = F.pad(lightness[..., :, 1:] - lightness[..., :, :-1], (0, 1, 0, 0))
    mag = (gx**2 + gy**2).sqrt()
    return mag >= torch.quantile(mag.flatten()[:: max(1, mag.numel() // 1_000_000)], 1 - fraction)


def bench_upsampling(photos: list[Path], scales: tuple[int, ...] = (1, 2, 4)) -> dict[tuple[int, str], list[float]]:
    """``{(scale, mode): [mean dE all, mean dE edges]}`` averaged over ``photos`` (see the module docstring)."""
    sums: dict[tuple[int, str], list[float]] = {}
    for path in photos:
        rgb = read_image(str(path), None)
        for scale in scales:
            big = rgb if scale == 1 else F.interpolate(rgb, scale_factor=scale, mode="bicubic").clamp(0, 1)
            lab = color.rgb_to_lab(big)
            small = F.interpolate(lab[:, 1:], size=(512, 512), mode="bilinear", antialias=True)
            edges = _edges(lab[:, :1])
            for mode in ("nearest", "bilinear"):
                ab = F.interpolate(small, size=lab.shape[-2:], mode=mode)
                out = color.rgb_to_lab(color.lab_to_rgb(torch.cat((lab[:, :1], ab), dim=1)))
                de = (out - lab).pow(2).sum(dim=1, keepdim=True).sqrt()
                acc = sums.setdefault((scale, mode), [0.0, 0.0])
                acc[0] += de.mean().item() / len(photos)
                acc[1] += de[edges].mean().item() / len(photos)
    return sums


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jobs.bench.colorizers", description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=int, default=4, help="grey photos from the shared data to time (default 4)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default {','.join(MODELS)})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--upsampling", action="store_true", help="also measure nearest vs bilinear ab upsampling")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gray = sorted((SHARED / "gray").glob("*.jpg"))[: args.photos]
    print(f"colorizers on {len(gray)} grey photos of {SHARED / 'gray'} (one at a time), device {args.device}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print(f"  {'model':20s} {'params':>9s} {'checkpoint':>11s} {'input':>8s} {'s/image':>9s} {'network':>9s}")
    for r in bench_cost(gray, tuple(args.models.split(",")), args.device):
        print(f"  {r['model']:20s} {r['params_m']:8.1f}M {r['checkpoint_mb']:9.0f}MB {r['input']:>8s} "
              f"{r['s_per_image']:9.3f} {r['network_s_per_image']:9.3f}")
    if args.upsampling:
        colour = sorted((SHARED / "color").glob("*.jpg"))
        print(f"\nab at 512 x 512 upsampled to the photo (true ab of {len(colour)} colour photos, L kept): "
              "mean CIE76 dE, all pixels / edge pixels")
        for (scale, mode), (all_px, edge_px) in bench_upsampling(colour).items():
            print(f"  photo x{scale}  {mode:8s}  {all_px:6.3f} / {edge_px:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
