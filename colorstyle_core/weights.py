"""Weight records: one frozen :class:`WeightSpec` per published weight set, with its preprocessing contract.

A record says where the published checkpoint lives, how to verify it (the sha256
prefix that torch.hub puts in the file name), its licence, the paper it comes from,
and the contract its network was trained with, so that constants such as the Lab
normalisation or the ImageNet mean live beside the weights and nowhere else (torchvision's
weights API and timm keep the same habit). The records live with what uses them: a
colorizer's in its entry file (``colorstyle_core/colorizers/``), the feed-forward stylizers'
in :mod:`colorstyle_core.style.feedforward`, VGG's here; :mod:`colorstyle_core.catalog`
finds any of them by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

HUB_HASH_RE = re.compile(r"-([a-f0-9]{8,64})\.")
"""torch.hub convention: ``name-<sha256 prefix>.ext``."""


@dataclass(frozen=True)
class LabContract:
    """How a Zhang et al. colorizer expects its input and returns its output.

    Attributes:
        net_size: network input ``(height, width)`` in pixels.
        l_cent, l_norm: the network sees ``(L - l_cent) / l_norm``.
        ab_norm: the network's ab (hints in, prediction out) are ``ab / ab_norm``.
        mask_cent: value subtracted from the {0, 1} hint mask (SIGGRAPH17 only);
            the released PyTorch port takes the mask uncentred.
        resize: how the network input is made: the RGB image is resized with
            Pillow's bicubic filter at 8 bits, then its L is taken (authors' demo).
        upsample: how predicted ab returns to the original size.
    """

    net_size: tuple[int, int] = (256, 256)
    l_cent: float = 50.0
    l_norm: float = 100.0
    ab_norm: float = 110.0
    mask_cent: float = 0.0
    resize: str = "pil-bicubic-8bit-rgb-then-L"
    upsample: str = "bilinear-align_corners=False"


@dataclass(frozen=True)
class ImageNetContract:
    """Input normalisation of torchvision's ImageNet classifiers.

    The network sees ``(rgb - mean) / std`` for sRGB ``rgb`` in ``[0, 1]``, channels R, G, B.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DDColorContract:
    """How DDColor (Kang et al. ICCV 2023) expects its input and returns its output (the authors' inference
    script, ``ddcolor/pipeline.py`` in piddnad/DDColor).

    Attributes:
        net_size: network input ``(height, width)`` in pixels.
        mean, std: ImageNet normalisation inside the network (its ``mean``/``std`` buffers).
        resize: the network input: the sRGB image resized bilinearly (no anti-aliasing, aspect
            ratio not kept), its L taken and turned back into a gray sRGB image (R = G = B).
        upsample: how predicted ab returns to the original size (the authors' legacy nearest;
            colorstyle's default ``preserve-l`` mode upsamples bilinearly instead).
        size: the encoder: ``tiny`` (ConvNeXt-T) or ``large`` (ConvNeXt-L).
    """

    net_size: tuple[int, int] = (512, 512)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: str = "bilinear-rgb-then-L-to-gray-rgb"
    upsample: str = "nearest"
    size: str = "large"


@dataclass(frozen=True)
class MagentaContract:
    """Input and output of Magenta's arbitrary image stylization networks (Ghiasi et al. 2017), ONNX export.

    Attributes:
        style_size: the style-prediction network's input, a centre square resized to this side (px).
        content_size: the transfer network's fixed input side (px); content is resized so its
            longer side is this, then reflection-padded to a square.
        bottleneck: length of the style vector.
        layout: tensor layout of both networks: ``NHWC`` float32 sRGB in ``[0, 1]``, output the same.
    """

    style_size: int = 256
    content_size: int = 384
    bottleneck: int = 100
    layout: str = "NHWC-float32-[0,1]"


@dataclass(frozen=True)
class WeightSpec:
    """One published weight set.

    Attributes:
        name: registry key, also the architecture name (``eccv16``, ``vgg19``, ...).
        kind: ``colorizer`` or ``vgg``.
        url: the authors' (or torchvision's) download URL.
        sha256: hex sha256 prefix (as published in the file name) or full digest.
        license: licence of the weights as stated by their publisher.
        reference: the paper the architecture and weights come from.
        preprocess: the contract the network was trained with.
        package_file: ``package/relative/path`` of a copy shipped inside an installed Python
            package (checked after the cache, before the URL), or ``None``.
        file_name: the name cached and staged copies get, where the URL's basename is not
            unique (Hugging Face's ``pytorch_model.bin``); torch.hub style, ``name-<sha8>.ext``.
        adapter: the named key adapter (:data:`colorstyle_core.loader.KEY_ADAPTERS`) that turns
            the file's contents into the architecture's state_dict, or ``None`` (used as is).
        archive_member: the file's path inside the zip at ``url``, where the publisher ships several
            checkpoints in one archive (Deep Exemplar), or ``None`` (``url`` is the file itself).
    """

    name: str
    kind: Literal["colorizer", "vgg", "fast-stylizer", "arbitrary-style"]
    url: str
    sha256: str
    license: str
    reference: str
    preprocess: LabContract | DDColorContract | ImageNetContract | MagentaContract | None
    package_file: str | None = None
    file_name: str | None = None
    adapter: str | None = None
    archive_member: str | None = None

    @property
    def filename(self) -> str:
        """Name of the file in caches and buckets: ``file_name``, else the URL's basename."""
        return self.file_name or self.url.rsplit("/", 1)[-1]


VGG16 = WeightSpec(
    name="vgg16",
    kind="vgg",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    sha256="397923af",
    license="BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access apply",
    reference="Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. ICLR 2015.",
    preprocess=ImageNetContract(),
)

VGG19 = WeightSpec(
    name="vgg19",
    kind="vgg",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9d",
    license="BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access apply",
    reference="Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. ICLR 2015.",
    preprocess=ImageNetContract(),
)

VGG_SPECS = (VGG16, VGG19)
"""torchvision's ImageNet VGG checkpoints: the Gatys stylizer's and the stylizer training's loss network."""
VGG_ARCHS = tuple(spec.name for spec in VGG_SPECS)


def vgg_spec(arch: str) -> WeightSpec:
    """The record of VGG ``arch``.

    Raises:
        ValueError: an unknown architecture, listing the known ones.
    """
    for spec in VGG_SPECS:
        if spec.name == arch:
            return spec
    raise ValueError(f"unknown VGG architecture {arch!r}; choose one of {', '.join(VGG_ARCHS)}")
