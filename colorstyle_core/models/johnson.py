"""The image transformation network of a fast (feed-forward) stylizer.

Johnson, Alahi, Fei-Fei, *Perceptual Losses for Real-Time Style Transfer and
Super-Resolution*, ECCV 2016 (supplementary, Table 1): three convolutions down
(9x9 stride 1, 3x3 stride 2, 3x3 stride 2), five residual blocks of two 3x3
convolutions, two upsampling steps and a 9x9 convolution back to RGB. Two changes
the field adopted since:

* instance normalisation instead of batch normalisation (Ulyanov, Vedaldi,
  Lempitsky 2016, *Instance Normalization: The Missing Ingredient for Fast
  Stylization*), with learned scale and shift, no running statistics;
* upsampling by nearest-neighbour resize then convolution instead of transposed
  convolution (Odena, Dumoulin, Olah 2016, *Deconvolution and Checkerboard
  Artifacts*), and reflection padding at every convolution, so no checkerboard
  and no dark borders.

The width is a parameter (``channels``, 32 as Johnson et al.), read back from a
checkpoint's shapes by :func:`width_of`, so a checkpoint says which network it is.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

RESIDUAL_BLOCKS = 5
"""Residual blocks at a quarter of the input's resolution (Johnson et al.)."""

MIN_SIDE = 16
"""Smaller inputs are padded (edge pixels repeated) to this side, then cropped back."""


class _ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution (``conv``), then optionally an instance norm (``norm``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, norm: bool = True):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride)
        if norm:
            self.norm = nn.InstanceNorm2d(c_out, affine=True)


class _Residual(nn.Module):
    """``x + norm(conv(relu(norm(conv(x)))))`` (Johnson et al., after He et al. 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _ConvLayer(channels, channels, 3)
        self.conv2 = _ConvLayer(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class _Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution with instance norm (resize-convolution)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = _ConvLayer(c_in, c_out, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network.

    Args:
        channels: width of the first layer (32 in the paper); the others are 2x and 4x.
    Shapes:
        ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]`` in, ``(N, 3, H', W')`` float32 out,
        ``H' = 4 * ceil(ceil(H / 2) / 2)`` (the input's size when H and W are multiples of
        4; :meth:`forward` crops back to ``(H, W)``). The output is not clamped (training
        needs the gradient); apply ``clamp(0, 1)`` for an image.
    """

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.down = nn.Sequential(_ConvLayer(3, c, 9), nn.ReLU(), _ConvLayer(c, 2 * c, 3, 2), nn.ReLU(),
                                  _ConvLayer(2 * c, 4 * c, 3, 2), nn.ReLU())
        self.residual = nn.Sequential(*(_Residual(4 * c) for _ in range(RESIDUAL_BLOCKS)))
        self.up = nn.Sequential(_Upsample(4 * c, 2 * c), nn.ReLU(), _Upsample(2 * c, c), nn.ReLU(),
                                _ConvLayer(c, 3, 9, norm=False))

    def forward(self, rgb: Tensor) -> Tensor:
        h, w = rgb.shape[-2:]
        if min(h, w) < MIN_SIDE:  # reflection padding needs a few pixels more than the 9x9 kernel's reach
            rgb = F.pad(rgb, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)), mode="replicate")
        # the network sees [0, 255]-scaled input as in Johnson et al.'s training, centred
        y = self.up(self.residual(self.down(rgb * 255.0 - 127.5)))
        return (y[..., :h, :w] + 127.5) / 255.0


def width_of(state_dict: Mapping[str, Tensor]) -> int:
    """The ``channels`` of the :class:`TransformerNet` a state_dict belongs to.

    Raises:
        ValueError: the state_dict is not a transformation network's (names the missing key).
    """
    key = "down.0.conv.weight"
    if key not in state_dict:
        raise ValueError(f"not a fast-stylizer checkpoint: it has no {key!r} "
                         f"(first keys: {', '.join(list(state_dict)[:3])})")
    return int(state_dict[key].shape[0])
