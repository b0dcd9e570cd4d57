"""The three networks of Deep Exemplar-based Video Colorization (Zhang, He, Liao, Sander, Yuan, Bermak,
Chen, CVPR 2019), written to load the authors' published checkpoints unchanged (flat state dicts,
``strict=True``): ``vgg19_conv.pth`` (:class:`ExemplarVGG19`), ``nonlocal_net_iter_76000.pth``
(:class:`WarpNet`) and ``colornet_iter_76000.pth`` (:class:`ColorVidNet`).

Conventions of the authors' code, kept here: Lab with L centred (``L - 50``, in ``[-50, 50]``) and
ab in ``[-128, 128]``; the VGG takes sRGB in ``[0, 1]`` and makes Caffe's input itself (BGR, mean
removed, x 255). The correspondence (Eq. 1-3 of the paper) is a cosine similarity between centred
feature vectors of the frame and the reference at 1/4 of the working size, a softmax over the
reference's positions with a temperature (the authors' test script uses ``1e-10``: winner takes all),
and the reference's colour averaged with those weights; the confidence map is the best similarity.
The colorization network takes ``[L, warped ab, confidence, previous frame's Lab]`` (7 channels).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPSILON = sys.float_info.epsilon
"""Added to feature norms (the authors add Python's float epsilon, 2.2e-16)."""

VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
"""The VGG19 activations the correspondence uses (the authors' ``r12 ... r52``)."""

_CAFFE_MEAN_BGR = (0.40760392, 0.45795686, 0.48501961)
"""The authors' VGG input mean, BGR in ``[0, 1]`` (Caffe's ImageNet mean / 255)."""


class ExemplarVGG19(nn.Module):
    """VGG19's 16 convolutions under the authors' flat names (``conv1_1`` ... ``conv5_4``), no classifier.

    ``forward(rgb)``: ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]`` -> the five :data:`VGG_LAYERS`
    activations ``(N, 64, H, W)``, ``(N, 128, H/2, W/2)``, ``(N, 256, H/4, W/4)``, ``(N, 512, H/8, W/8)``,
    ``(N, 512, H/16, W/16)`` (sizes floored by each max pool).
    """

    BLOCKS = (2, 2, 4, 4, 4)
    WIDTHS = (64, 128, 256, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        channels = 3
        for block, (depth, width) in enumerate(zip(self.BLOCKS, self.WIDTHS), start=1):
            for i in range(1, depth + 1):
                self.add_module(f"conv{block}_{i}", nn.Conv2d(channels, width, kernel_size=3, padding=1))
                channels = width
        self.register_buffer("mean_bgr", torch.tensor(_CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: Tensor) -> list[Tensor]:
        x = (rgb.flip(1) - self.mean_bgr) * 255  # the authors' vgg_preprocess
        out = []
        for block, depth in enumerate(self.BLOCKS, start=1):
            if block > 1:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            for i in range(1, depth + 1):
                x = F.relu(getattr(self, f"conv{block}_{i}")(x))
                if i == 2:
                    out.append(x)
                    if block == 5:
                        return out
        return out


def _reduce(in_ch: int, mid: int, stride: int, upsample: bool) -> nn.Sequential:
    """Two reflection-padded 3x3 convolutions with instance norm and PReLU (``layer2_1`` ... ``layer4_1``)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(in_ch, mid, 3, 1, 0), nn.InstanceNorm2d(mid),
                               nn.PReLU(), nn.ReflectionPad2d(1), nn.Conv2d(mid, 64, 3, stride, 0),
                               nn.InstanceNorm2d(64), nn.PReLU()]
    if upsample:
        layers.append(nn.Upsample(scale_factor=2))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    """A residual block of two reflection-padded convolutions, instance norm and one shared PReLU."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.padding1, self.padding2 = nn.ReflectionPad2d(1), nn.ReflectionPad2d(1)
        self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, 1, 0), nn.Conv2d(ch, ch, 3, 1, 0)
        self.bn1, self.bn2 = nn.InstanceNorm2d(ch), nn.InstanceNorm2d(ch)
        self.prelu = nn.PReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.prelu(self.bn1(self.conv1(self.padding1(x))))
        out = self.bn2(self.conv2(self.padding2(out)))
        return self.prelu(out + x)


class WarpNet(nn.Module):
    """The correspondence network (the authors' ``WarpNet``, file ``nonlocal_net_iter_76000.pth``).

    ``forward(ref_lab, frame_feats, ref_feats, temperature)``:

    - ``ref_lab``: ``(N, 3, h, w)`` float32 reference Lab at the working size (L centred);
    - ``frame_feats``, ``ref_feats``: the four L2-normalised (over channels) VGG activations
      ``relu2_2 ... relu5_2`` of the frame (its gray) and of the reference (:func:`normalize_features`);
    - ``temperature``: softmax temperature of the similarities.

    Returns ``(warped_lab, confidence)``: ``(N, 3, h', w')`` the reference's Lab averaged with the
    softmax weights and ``(N, 1, h', w')`` the best cosine similarity per position, both at
    ``4 * (h // 4, w // 4)`` (nearest upsampling from 1/4 of the working size).

    The feature of ``relu5_2`` comes out 2 rows short where ``h / 4`` is 2 modulo 4 (432 x 768 frames,
    the authors' default); as the authors do, it is then padded by one replicated row above and below.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layer2_1 = _reduce(128, 128, 2, upsample=False)
        self.layer3_1 = _reduce(256, 128, 1, upsample=False)
        self.layer4_1 = _reduce(512, 256, 1, upsample=True)
        self.layer5_1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(512, 256, 3, 1, 0), nn.InstanceNorm2d(256),
                                      nn.PReLU(), nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1),
                                      nn.Conv2d(256, 64, 3, 1, 0), nn.InstanceNorm2d(64), nn.PReLU(),
                                      nn.Upsample(scale_factor=2))
        self.layer = nn.Sequential(_Residual(256), _Residual(256), _Residual(256))
        self.theta = nn.Conv2d(256, 256, 1, 1, 0)
        self.phi = nn.Conv2d(256, 256, 1, 1, 0)

    def embed(self, feats: list[Tensor]) -> Tensor:
        """The four normalised activations -> ``(N, 256, h/4, w/4)`` features for matching."""
        f2, f3, f4, f5 = self.layer2_1(feats[0]), self.layer3_1(feats[1]), self.layer4_1(feats[2]), \
            self.layer5_1(feats[3])
        if f5.shape[-2:] != f2.shape[-2:]:
            f5 = F.pad(f5, (0, 0, 1, 1), "replicate")
        return self.layer(torch.cat((f2, f3, f4, f5), 1))

    def forward(self, ref_lab: Tensor, frame_feats: list[Tensor], ref_feats: list[Tensor],
                temperature: float) -> tuple[Tensor, Tensor]:
        n, channels, height, width = ref_lab.shape
        fh, fw = int(height / 4), int(width / 4)
        theta = _centred_unit(self.theta(self.embed(frame_feats)).view(n, 256, -1))
        phi = _centred_unit(self.phi(self.embed(ref_feats)).view(n, 256, -1))
        similarity = torch.matmul(theta.permute(0, 2, 1), phi)  # (N, frame positions, reference positions)
        confidence = similarity.max(dim=-1, keepdim=True)[0].view(n, 1, fh, fw)
        weights = F.softmax(similarity / temperature, dim=-1)
        ref_colour = F.avg_pool2d(ref_lab, 4).view(n, channels, -1).permute(0, 2, 1)
        warped = torch.matmul(weights, ref_colour).permute(0, 2, 1).contiguous().view(n, channels, fh, fw)
        return F.interpolate(warped, scale_factor=4), F.interpolate(confidence, scale_factor=4)


def _centred_unit(x: Tensor) -> Tensor:
    """``(N, C, P)`` vectors centred over positions and scaled to unit length over channels."""
    x = x - x.mean(dim=-1, keepdim=True)
    return torch.div(x, torch.norm(x, 2, 1, keepdim=True) + EPSILON)


def normalize_features(feats: list[Tensor]) -> list[Tensor]:
    """The authors' ``feature_normalize`` of ``relu2_2 ... relu5_2`` (``relu1_2`` is not matched)."""
    return [torch.div(f, torch.norm(f, 2, 1, keepdim=True) + EPSILON) for f in feats[1:]]


_COLORNET_CONVS = (
    # name, in, out, dilation (3x3, padding = dilation)
    ("conv1_2", 64, 64, 1), ("conv2_1", 64, 128, 1), ("conv2_2", 128, 128, 1), ("conv3_1", 128, 256, 1),
    ("conv3_2", 256, 256, 1), ("conv3_3", 256, 256, 1), ("conv4_1", 256, 512, 1), ("conv4_2", 512, 512, 1),
    ("conv4_3", 512, 512, 1), ("conv5_1", 512, 512, 2), ("conv5_2", 512, 512, 2), ("conv5_3", 512, 512, 2),
    ("conv6_1", 512, 512, 2), ("conv6_2", 512, 512, 2), ("conv6_3", 512, 512, 2), ("conv7_1", 512, 512, 1),
    ("conv7_2", 512, 512, 1), ("conv7_3", 512, 512, 1), ("conv3_3_short", 256, 256, 1),
    ("conv8_2", 256, 256, 1), ("conv8_3", 256, 256, 1), ("conv2_2_short", 128, 128, 1),
    ("conv9_2", 128, 128, 1), ("conv1_2_short", 64, 128, 1), ("conv10_2", 128, 128, 1),
)


class ColorVidNet(nn.Module):
    """The colorization network (the authors' ``ColorVidNet(7)``, file ``colornet_iter_76000.pth``).

    ``forward(x)``: ``(N, 7, h, w)`` float32 ``[L (centred), warped ab, confidence, previous Lab
    (L centred)]`` -> ``(N, 2, h, w)`` ab in ``(-128, 128)`` (``128 tanh``). ``h, w`` multiples of 8.
    A U-Net of the colorization network of Zhang et al. 2017 with instance norm, strided 1x1
    depthwise downsampling (``conv*_norm_ss``) and nearest upsampling + 3x3 convolutions.
    """

    def __init__(self, in_channels: int = 7) -> None:
        super().__init__()
        self.conv1_1 = nn.Sequential(nn.Conv2d(in_channels, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 1, 1))
        for name, cin, cout, dilation in _COLORNET_CONVS:
            self.add_module(name, nn.Conv2d(cin, cout, 3, 1, dilation, dilation))
        for name, ch in (("conv1_2norm_ss", 64), ("conv2_2norm_ss", 128), ("conv3_3norm_ss", 256)):
            self.add_module(name, nn.Conv2d(ch, ch, 1, 2, bias=False, groups=ch))
        self.conv8_1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(512, 256, 3, 1, 1))
        self.conv9_1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(256, 128, 3, 1, 1))
        self.conv10_1 = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(128, 128, 3, 1, 1))
        self.conv10_ab = nn.Conv2d(128, 2, 1, 1)

    def _block(self, x: Tensor, *names: str) -> Tensor:
        for name in names:
            x = F.relu(getattr(self, name)(x))
        return F.instance_norm(x)

    def forward(self, x: Tensor) -> Tensor:
        c1 = self._block(F.relu(self.conv1_1(x)), "conv1_2")
        c2 = self._block(self.conv1_2norm_ss(c1), "conv2_1", "conv2_2")
        c3 = self._block(self.conv2_2norm_ss(c2), "conv3_1", "conv3_2", "conv3_3")
        x = self._block(self.conv3_3norm_ss(c3), "conv4_1", "conv4_2", "conv4_3")
        x = self._block(x, "conv5_1", "conv5_2", "conv5_3")
        x = self._block(x, "conv6_1", "conv6_2", "conv6_3")
        x = self._block(x, "conv7_1", "conv7_2", "conv7_3")
        x = self._block(F.relu(self.conv8_1(x) + self.conv3_3_short(c3)), "conv8_2", "conv8_3")
        x = self._block(F.relu(self.conv9_1(x) + self.conv2_2_short(c2)), "conv9_2")
        x = F.leaky_relu(self.conv10_2(F.relu(self.conv10_1(x) + self.conv1_2_short(c1))), 0.2)
        return torch.tanh(self.conv10_ab(x)) * 128
