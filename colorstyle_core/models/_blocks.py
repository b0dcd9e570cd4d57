"""Building blocks shared by the Zhang et al. colorizers.

The layer order inside each ``nn.Sequential`` fixes the checkpoint's key names
(``model1.0.weight``, ``model1.4.running_mean``, ...), so it must not change.
"""

from __future__ import annotations

from torch import nn


def conv_relu_stack(
    channels: list[int], *, stride_last: int = 1, dilation: int = 1, norm: bool = True
) -> list[nn.Module]:
    """``[conv, ReLU] * k`` (+ BatchNorm): the authors' ``modelN`` pattern.

    Args:
        channels: ``[c_in, c_1, ..., c_k]``; one 3x3 convolution per step.
        stride_last: stride of the last convolution (2 = downsample).
        dilation: dilation (and padding) of every convolution.
        norm: append ``BatchNorm2d(c_k)``.
    """
    layers: list[nn.Module] = []
    steps = list(zip(channels[:-1], channels[1:]))
    for i, (c_in, c_out) in enumerate(steps):
        stride = stride_last if i == len(steps) - 1 else 1
        layers += [
            nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=True),
            nn.ReLU(inplace=True),
        ]
    if norm:
        layers.append(nn.BatchNorm2d(channels[-1]))
    return layers
