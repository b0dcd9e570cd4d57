"""Zhang et al.'s colorizers: ECCV 2016 (*Colorful Image Colorization*) and SIGGRAPH 2017 (*Real-Time
User-Guided Image Colorization with Learned Deep Priors*, colour hints).

Their pre- and post-processing follow the authors' demo (``colorizers/util.py`` in
richzhang/colorization): the sRGB image is resized to 256 x 256 as Pillow's bicubic filter
does (anti-aliased), its L is the network's input (gray inputs: L of the gray level); the
predicted ab is upsampled bilinearly and joined with the L of the original, full-resolution
image (:class:`~colorstyle_core.colorizers.entry.LabJoin`; ``gamut="clip"`` is the demo's
scikit-image clipping).
"""

from __future__ import annotations

import torch
from torch import Tensor

from colorstyle_core import color
from colorstyle_core.colorizers.entry import ColorizerEntry, Finetuning, LabJoin, Post, ab_bin_centres
from colorstyle_core.models.eccv16 import ECCV16Colorizer
from colorstyle_core.models.siggraph17 import SIGGRAPH17Colorizer
from colorstyle_core.resample import resize_like_pil_bicubic, resize_like_pil_bicubic_banded
from colorstyle_core.synthetic import Generation
from colorstyle_core.weights import LabContract, WeightSpec

_AUTHORS_LICENSE = "BSD-2-Clause (richzhang/colorization)"


class ZhangRecipe:
    """The network input: L of the image resized as Pillow's bicubic does (``(N, 1, 256, 256)`` in ``[0, 100]``)."""

    def network_input(self, images: Tensor, size: tuple[int, int]) -> Tensor:
        return color.rgb_to_l(resize_like_pil_bicubic(images, size))

    def network_input_gray(self, gray: Tensor, size: tuple[int, int]) -> Tensor:
        return color.rgb_to_l(color.as_rgb(resize_like_pil_bicubic(gray, size)))

    def network_input_banded(self, images: Tensor, size: tuple[int, int], band_rows: int,
                             device: torch.device) -> Tensor:
        return color.rgb_to_l(resize_like_pil_bicubic_banded(images, size, band_rows).to(device))

    def post(self, gamut: color.GamutMode, compile_colour: bool) -> Post:
        return LabJoin(gamut, compile_colour)


ECCV16 = WeightSpec(
    name="eccv16",
    kind="colorizer",
    url="https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
    sha256="9b330a0b",
    license=_AUTHORS_LICENSE,
    reference="Zhang, Isola, Efros. Colorful Image Colorization. ECCV 2016.",
    preprocess=LabContract(),
)

SIGGRAPH17 = WeightSpec(
    name="siggraph17",
    kind="colorizer",
    url="https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
    sha256="df00044c",
    license=_AUTHORS_LICENSE,
    reference=(
        "Zhang, Zhu, Isola, Geng, Lin, Yu, Efros. Real-Time User-Guided Image Colorization "
        "with Learned Deep Priors. SIGGRAPH 2017."
    ),
    preprocess=LabContract(),
)

_ECCV16_BLOCKS = ("model1", "model2", "model3", "model4", "model5", "model6", "model7", "model8")
_SIGGRAPH17_DECODER = ("model8up", "model8", "model9up", "model9", "model10up", "model10", "model3short8",
                       "model2short9", "model1short10", "model_class", "model_out")

ENTRIES = (
    ColorizerEntry(
        ECCV16, lambda: ECCV16Colorizer(ECCV16.preprocess), ZhangRecipe(),
        # generated: the 313 ab-bin logits peaked like a trained network's, model_out holding bin centres
        generation=Generation(output_scale={"model8.6.weight": 50.0}, special={"model_out.weight": ab_bin_centres}),
        finetuning=Finetuning(_ECCV16_BLOCKS, ("model7", "model8")),  # the last two, as the CS 6220 report did
    ),
    ColorizerEntry(
        SIGGRAPH17, lambda: SIGGRAPH17Colorizer(SIGGRAPH17.preprocess), ZhangRecipe(), takes_hints=True,
        # the decoder after its dilated blocks, with the shortcuts and both heads
        finetuning=Finetuning(_ECCV16_BLOCKS[:7] + _SIGGRAPH17_DECODER, _SIGGRAPH17_DECODER),
    ),
)
