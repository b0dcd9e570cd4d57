"""DDColor (Kang et al., ICCV 2023): the four published weight sets and the authors' pre/post-processing.

The authors' inference script (``ddcolor/pipeline.py`` in piddnad/DDColor): the image resized
to 512 x 512 bilinearly (no anti-aliasing, aspect ratio not kept), its L taken with OpenCV's
float Lab and turned back into a gray sRGB image (R = G = B) as the network's input. Their
output (``gamut="clip"``, :class:`~colorstyle_core.colorizers.entry.OpenCVLab`): ab upsampled
nearest and joined with the original's L in OpenCV's Lab; colorstyle's default upsamples
bilinearly and keeps L exactly (:class:`~colorstyle_core.colorizers.entry.LabJoin`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from colorstyle_core import color
from colorstyle_core.colorizers.entry import ColorizerEntry, LabJoin, OpenCVLab, Post
from colorstyle_core.models.ddcolor import DDColor
from colorstyle_core.resample import resize_bilinear, resize_bilinear_banded
from colorstyle_core.synthetic import Generation, spectral_vectors
from colorstyle_core.weights import DDColorContract, WeightSpec


def ddcolor_input(small: Tensor) -> Tensor:
    """DDColor's input from the resized image: its L as gray sRGB, ``(N, C, h, w)`` -> ``(N, 3, h, w)``.

    As the authors make it: L with OpenCV's float Lab, a = b = 0, back to RGB with OpenCV. OpenCV's
    tabulated sRGB curves make that gray differ from the exact one (:func:`~colorstyle_core.color.l_to_gray`)
    by up to 0.002 (mean 0.0008, measured), which moves the network's ab by about 0.06 on average,
    so the input is made with OpenCV itself (on the CPU: 512 x 512 pixels, about a millisecond).
    """
    lightness = color.rgb_to_l_opencv(small)
    return color.lab_to_rgb_opencv(torch.cat((lightness, torch.zeros_like(lightness).expand(-1, 2, -1, -1)), dim=1))


class DDColorRecipe:
    """The authors' input (bilinear 512 x 512, gray sRGB of its L) and output (:class:`OpenCVLab` under ``clip``)."""

    def network_input(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        return ddcolor_input(resize_bilinear(images, size))

    def network_input_gray(self, gray: Tensor, size: tuple[int, int]) -> Tensor:
        return ddcolor_input(color.as_rgb(resize_bilinear(gray, size)))

    def network_input_banded(self, images: Tensor, size: tuple[int, int], band_rows: int,
                             device: torch.device) -> Tensor:
        return ddcolor_input(resize_bilinear_banded(images, size, band_rows).to(device))

    def post(self, gamut: color.GamutMode, compile_colour: bool) -> Post:
        return OpenCVLab() if gamut == "clip" else LabJoin(gamut, compile_colour)


def _trained_like(state_dict: dict[str, Tensor], gen: torch.Generator, contract: DDColorContract) -> None:
    """Generated DDColor weights: the ImageNet ``mean``/``std`` buffers as published, and each
    spectral-normalised convolution's ``weight_u``/``weight_v`` the leading singular pair of its
    ``weight_orig`` (random ones make the output explode)."""
    state_dict["mean"] = torch.tensor(contract.mean).view(1, 3, 1, 1)
    state_dict["std"] = torch.tensor(contract.std).view(1, 3, 1, 1)
    for key in [k for k in state_dict if k.endswith(".weight_orig")]:
        stem = key.removesuffix("_orig")
        state_dict[stem + "_u"], state_dict[stem + "_v"] = spectral_vectors(state_dict[key], gen)


_KANG = ("Kang, Yang, Ji, Xie, Wang, Zhang. DDColor: Towards Photo-Realistic Image Colorization via Dual "
         "Decoders. ICCV 2023.")
_LICENSE = "Apache-2.0 (piddnad/DDColor and its Hugging Face model repositories)"
_HF = "https://huggingface.co/piddnad"


def _entry(name: str, path: str, sha256: str, size: str, about: str, cached_as: str | None = None) -> ColorizerEntry:
    """A DDColor weight set: the authors' Hugging Face file ``path`` (under ``piddnad/``), Apache-2.0."""
    contract = DDColorContract(size=size)
    spec = WeightSpec(name=name, kind="colorizer", url=f"{_HF}/{path}", sha256=sha256, license=_LICENSE,
                      reference=f"{_KANG} {about}", preprocess=contract, file_name=cached_as, adapter="ddcolor")
    generation = Generation(output_scale={"decoder.color_decoder.color_embed.layers.2.weight": 60.0},  # ab of a
                            finish=lambda sd, gen: _trained_like(sd, gen, contract))  # trained magnitude
    return ColorizerEntry(spec, lambda: DDColor(size, contract), DDColorRecipe(), generation=generation)


ENTRIES = (
    _entry("ddcolor_paper_tiny", "ddcolor_paper_tiny/resolve/main/pytorch_model.bin",
           "8a1277bc90a1bfbb6d2d83933a9a6bc821931879ca93e26e4fcec12165d41fce", "tiny",
           "DDColor-T (ConvNeXt-T encoder) trained on ImageNet, the paper's scheme.",
           "ddcolor_paper_tiny-8a1277bc.bin"),
    _entry("ddcolor_paper", "ddcolor_paper/resolve/main/pytorch_model.bin",
           "5c77db8292398a2ec1397003f0a90266c28e97b013515d5e9a32e73a4c54a67d", "large",
           "DDColor-L (ConvNeXt-L encoder) trained on ImageNet: the paper's model.", "ddcolor_paper-5c77db82.bin"),
    _entry("ddcolor_modelscope", "DDColor-models/resolve/main/ddcolor_modelscope.pth",
           "17c460d7e55b32a598370621d77173be59e03c24b0823f06821db23a50c263ce", "large",
           "DDColor-L trained on ImageNet with BigColor's data cleaning (the authors' default)."),
    _entry("ddcolor_artistic", "DDColor-models/resolve/main/ddcolor_artistic.pth",
           "a591ee5beedad36de703d8977e92d0c30c1eedc6453fd1b300f3b460842a23a9", "large",
           "DDColor-L trained on ImageNet plus the authors' artistic images, without colourfulness loss."),
)
