"""Make tests/data/golden_deepexemplar.npz by running the authors' own code on seeded weights.

Usage (once, by hand; the test suite only reads the result)::

    git clone https://github.com/zhangmozhe/Deep-Exemplar-based-Video-Colorization /tmp/dex
    git -C /tmp/dex checkout 2c41bdf34ea71fab65a94cacf4bccecc68b3d988
    python tests/goldens/make_deepexemplar_goldens.py /tmp/dex

What runs is the authors' ``test.py:colorize_video`` unchanged, on the CPU, on folders of frames:
a still (one frame) and an 8-frame shot, each with one colour reference. Shims, all outside their
code: ``.cuda()`` returns the tensor itself and ``torch.cuda.set_device`` does nothing (no GPU);
``torchvision`` (whose wheel does not import on this CPU torch) is replaced by the two functions
their inference calls, ``transforms.CenterCrop`` (a PIL centre crop; their images already have
the crop's size) and ``utils.make_grid`` (one image: the image itself, as torchvision returns it);
``tqdm`` is the identity; while their modules are imported, ``torch.load`` and ``load_state_dict`` do
nothing (``models/vgg19_gray.py`` loads ``vgg19_gray.pth`` at import, a network inference never uses);
``save_frames`` is captured instead of writing JPEGs (their JPEG would add its own loss); ``folder2vid``
does nothing. Their networks load our generated weights
(:func:`colorstyle_core.colorizers.deepexemplar.generated_weights`) through their own ``load_state_dict``.
Needs opencv-contrib (their ``cv2.ximgproc``), scikit-image and scipy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from colorstyle_core.colorizers.deepexemplar import generated_weights  # noqa: E402
from tests.goldens.deepexemplar_inputs import CASES, SEED, case_inputs  # noqa: E402

AUTHORS_COMMIT = "2c41bdf34ea71fab65a94cacf4bccecc68b3d988"


def _shim_modules() -> None:
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.set_device = lambda *a, **k: None  # type: ignore[assignment]

    class CenterCrop:
        def __init__(self, size):
            self.h, self.w = size

        def __call__(self, img):
            left, top = int(round((img.width - self.w) / 2.0)), int(round((img.height - self.h) / 2.0))
            return img.crop((left, top, left + self.w, top + self.h))

    def make_grid(tensor, nrow=8, **kwargs):
        if tensor.dim() == 4 and tensor.size(0) == 1:
            return tensor.squeeze(0)
        raise NotImplementedError("the shim only knows one image")

    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.CenterCrop = CenterCrop
    tv.utils = types.ModuleType("torchvision.utils")
    tv.utils.make_grid = make_grid
    tv.models = types.ModuleType("torchvision.models")
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms, "torchvision.utils": tv.utils,
                        "torchvision.models": tv.models})
    tq = types.ModuleType("tqdm")
    tq.tqdm = lambda it, *a, **k: it
    sys.modules["tqdm"] = tq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("authors", type=Path, help="a checkout of zhangmozhe/Deep-Exemplar-based-Video-Colorization")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "golden_deepexemplar.npz")
    args = parser.parse_args()
    if (args.authors / ".git").exists():
        head = subprocess.run(["git", "-C", str(args.authors), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        if head != AUTHORS_COMMIT:
            sys.exit(f"{args.authors} is at {head}, not {AUTHORS_COMMIT}")
    torch.set_num_threads(1)
    _shim_modules()
    sys.path.insert(0, str(args.authors))
    os.chdir(args.authors)
    real_load, real_load_state_dict = torch.load, torch.nn.Module.load_state_dict
    torch.load = lambda *a, **k: {}  # their models/vgg19_gray.py loads vgg19_gray.pth when imported;
    torch.nn.Module.load_state_dict = lambda self, *a, **k: None  # inference never uses that network
    try:
        import test as authors  # their test.py
        from models.ColorVidNet import ColorVidNet
        from models.NonlocalNet import VGG19_pytorch, WarpNet
    finally:
        torch.load, torch.nn.Module.load_state_dict = real_load, real_load_state_dict

    weights = generated_weights(SEED)
    vggnet, nonlocal_net, colornet = VGG19_pytorch(), WarpNet(1), ColorVidNet(7)
    for net, role in ((vggnet, "vgg"), (nonlocal_net, "warpnet"), (colornet, "colornet")):
        net.load_state_dict(weights[role], strict=True)
        net.eval()

    captured: list[np.ndarray] = []
    authors.save_frames = lambda image, folder, index=None, image_name=None: captured.append(
        np.clip(image, 0, 255).astype(np.uint8))
    authors.folder2vid = lambda **kwargs: None
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            frames, reference = case_inputs(case)
            folder = Path(tmp) / case.name
            folder.mkdir()
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"{i:05d}.png")
            Image.fromarray(reference).save(Path(tmp) / f"{case.name}_ref.png")
            opt = types.SimpleNamespace(image_size=list(case.image_size), frame_propagate=False)
            captured.clear()
            authors.colorize_video(opt, str(folder) + "/", str(Path(tmp) / f"{case.name}_ref.png"),
                                   str(Path(tmp) / f"{case.name}_out") + "/", nonlocal_net, colornet, vggnet)
            arrays[case.name] = np.stack(captured)
            print(case.name, arrays[case.name].shape)
    arrays["authors_commit"] = np.array(AUTHORS_COMMIT)
    arrays["torch_version"] = np.array(torch.__version__)
    np.savez_compressed(args.out, **arrays)
    print("wrote", args.out, args.out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
