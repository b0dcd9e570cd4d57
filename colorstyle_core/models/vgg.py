"""VGG16/VGG19 with layers addressed by name, compatible with torchvision's checkpoints.

Simonyan & Zisserman (ICLR 2015), configurations D (VGG16) and E (VGG19). The
``features`` stack uses torchvision's module indices, so ``vgg16-397923af.pth`` and
``vgg19-dcbb9e9d.pth`` load with ``strict=True`` into :class:`VGG` (features and
classifier) and, after :func:`vgg_features_only`, into :class:`VGGFeatures`.
torchvision itself is not imported (its PyPI wheel does not import on a CPU torch,
see ../shared/NOTES.md).

Layer names follow the style-transfer literature: ``conv{block}_{i}``,
``relu{block}_{i}`` and ``pool{block}``, blocks 1..5.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import Tensor, nn

from colorstyle_core.devices import Precision, autocast
from colorstyle_core.weights import ImageNetContract

_CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)


def layer_names(arch: str) -> tuple[str, ...]:
    """Names of the ``features`` layers of ``arch`` in execution order (index = torchvision index).

    Raises:
        ValueError: for an unknown ``arch``.
    """
    try:
        convs = _CONVS_PER_BLOCK[arch]
    except KeyError:
        raise ValueError(f"unknown VGG architecture {arch!r}; known: {', '.join(_CONVS_PER_BLOCK)}") from None
    names: list[str] = []
    for block, n in enumerate(convs, start=1):
        for i in range(1, n + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


ALL_LAYER_NAMES = frozenset(layer_names("vgg19")) | frozenset(layer_names("vgg16"))


def _features(arch: str, pooling: Literal["max", "avg"]) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for name in layer_names(arch):
        if name.startswith("conv"):
            c_out = _BLOCK_CHANNELS[int(name[4]) - 1]
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            c_in = c_out
        elif name.startswith("relu"):
            layers.append(nn.ReLU(inplace=False))  # callers read conv outputs too
        elif pooling == "max":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """The full torchvision VGG (features + classifier), used to check checkpoint layouts.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
    """

    def __init__(self, arch: str):
        super().__init__()
        self.features = _features(arch, "max")
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 1000),
        )

    def forward(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` ImageNet-normalised images -> ``(N, 1000)`` logits."""
        return self.classifier(torch.flatten(self.avgpool(self.features(images)), 1))


def vgg_features_only(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a torchvision VGG checkpoint, drop ``classifier.*``.

    Raises:
        ValueError: if any key is neither ``features.*`` nor ``classifier.*`` (not a
            torchvision VGG checkpoint), naming the first such keys.
    """
    stray = [k for k in state_dict if not k.startswith(("features.", "classifier."))]
    if stray:
        raise ValueError(f"not a torchvision VGG state_dict: unexpected keys {stray[:5]}")
    return {k: v for k, v in state_dict.items() if k.startswith("features.")}


class VGGFeatures(nn.Module):
    """Frozen VGG ``features`` returning activations by layer name.

    The module owns its input normalisation (the weights' :class:`ImageNetContract`),
    so callers pass sRGB in ``[0, 1]``. Its state_dict holds only ``features.*``
    (the mean and std buffers are not persistent).

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        contract: the normalisation of the weights to be loaded.
        pooling: ``"max"`` (as trained) or ``"avg"`` (suggested by Gatys et al. 2016
            for smoother gradients); pooling has no parameters, so either loads the
            same checkpoint.
    """

    def __init__(self, arch: str = "vgg19", contract: ImageNetContract = ImageNetContract(),
                 pooling: Literal["max", "avg"] = "max"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        self.arch = arch
        self.names = layer_names(arch)
        self.features = _features(arch, pooling)
        self.register_buffer("mean", torch.tensor(contract.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(contract.std).view(1, 3, 1, 1), persistent=False)
        self.precision: Precision = "fp32"  # execution.precision; applies on CUDA (devices.autocast)
        self.requires_grad_(False)
        self.eval()

    def check_layers(self, layers: Iterable[str]) -> None:
        """Raise ``ValueError`` naming any layer that ``arch`` does not have."""
        unknown = sorted(set(layers) - set(self.names))
        if unknown:
            raise ValueError(f"{self.arch} has no layer(s) {unknown}; it has {', '.join(self.names)}")

    def forward(self, images: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Activations of the requested layers, stopping after the deepest one.

        Args:
            images: ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]``.
            layers: names such as ``"relu1_1"``, ``"conv4_2"``, ``"pool3"``.
        Returns:
            ``{name: (N, C, H', W') float32}`` for each requested name.
        Raises:
            ValueError: for a layer name this architecture does not have.
        """
        wanted = set(layers)
        self.check_layers(wanted)
        out: dict[str, Tensor] = {}
        x = (images - self.mean) / self.std
        with autocast(x.device, self.precision):
            for name, module in zip(self.names, self.features):
                x = module(x)
                if name in wanted:
                    out[name] = x.float() if x.dtype != images.dtype else x  # Gram matrices and losses in fp32
                    if len(out) == len(wanted):
                        break
        return out
