"""Zhang et al., Real-Time User-Guided Image Colorization with Learned Deep Priors (SIGGRAPH 2017).

The local-hints network: a U-Net that takes L, sparse ab hints and their mask and
regresses ab. Same modules, in the same order, as the authors' PyTorch port
(``colorizers/siggraph17.py`` in richzhang/colorization), so
``siggraph17-df00044c.pth`` loads with ``strict=True``. ``model_class`` (the
529-way classification head used in training) is kept for the checkpoint but not
used at inference, as in the authors' code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colorstyle_core.models._blocks import conv_relu_stack
from colorstyle_core.weights import LabContract


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=True))


def _shortcut(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=True))


class SIGGRAPH17Colorizer(nn.Module):
    """SIGGRAPH17 user-guided colorization network.

    Args:
        contract: Lab normalisation and hint-mask centring the weights were trained with.
        classes: size of the (unused at inference) classification head.
    """

    def __init__(self, contract: LabContract = LabContract(), classes: int = 529):
        super().__init__()
        self.contract = contract
        self.model1 = nn.Sequential(*conv_relu_stack([4, 64, 64]))
        self.model2 = nn.Sequential(*conv_relu_stack([64, 128, 128]))
        self.model3 = nn.Sequential(*conv_relu_stack([128, 256, 256, 256]))
        self.model4 = nn.Sequential(*conv_relu_stack([256, 512, 512, 512]))
        self.model5 = nn.Sequential(*conv_relu_stack([512, 512, 512, 512], dilation=2))
        self.model6 = nn.Sequential(*conv_relu_stack([512, 512, 512, 512], dilation=2))
        self.model7 = nn.Sequential(*conv_relu_stack([512, 512, 512, 512]))
        self.model8up = _up(512, 256)
        self.model8 = nn.Sequential(nn.ReLU(inplace=True), *conv_relu_stack([256, 256, 256]))
        self.model9up = _up(256, 128)
        self.model9 = nn.Sequential(nn.ReLU(inplace=True), *conv_relu_stack([128, 128]))
        self.model10up = _up(128, 128)
        self.model10 = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, kernel_size=3, stride=1, padding=1, bias=True),
            nn.LeakyReLU(negative_slope=0.2),
        )
        self.model3short8 = _shortcut(256, 256)
        self.model2short9 = _shortcut(128, 128)
        self.model1short10 = _shortcut(64, 128)
        self.model_class = nn.Sequential(nn.Conv2d(256, classes, kernel_size=1, bias=True))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, kernel_size=1, bias=True), nn.Tanh())

    def forward(self, lightness: Tensor, hint_ab: Tensor | None = None, hint_mask: Tensor | None = None) -> Tensor:
        """Predict ab from L and optional local colour hints.

        Args:
            lightness: ``(N, 1, H, W)`` float32, L in ``[0, 100]``; H and W multiples of 8
                (the authors use 256 x 256).
            hint_ab: ``(N, 2, H, W)`` float32 ab of the hints in Lab units, 0 elsewhere;
                ``None`` = no hints (automatic mode).
            hint_mask: ``(N, 1, H, W)`` float32, 1 where a hint is given, 0 elsewhere.
        Returns:
            ``(N, 2, H, W)`` float32 ab in Lab units (``[-ab_norm, ab_norm]``).
        """
        conv8_3, conv10_2 = self._features(lightness, hint_ab, hint_mask)
        return self.model_out(conv10_2) * self.contract.ab_norm

    def forward_train(self, lightness: Tensor, hint_ab: Tensor | None = None, hint_mask: Tensor | None = None
                      ) -> tuple[Tensor, Tensor]:
        """:meth:`forward` and the classification head the authors trained beside it.

        Returns:
            ``(ab, class_logits)``: ``(N, 2, H, W)`` ab in Lab units and ``(N, 529, H/4, W/4)``
            scores of the ``model_class`` head (on conv8, before the softmax).
        """
        conv8_3, conv10_2 = self._features(lightness, hint_ab, hint_mask)
        return self.model_out(conv10_2) * self.contract.ab_norm, self.model_class(conv8_3)

    def _features(self, lightness: Tensor, hint_ab: Tensor | None, hint_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        c = self.contract
        if hint_ab is None:
            hint_ab = torch.zeros_like(lightness).expand(-1, 2, -1, -1)
        if hint_mask is None:
            hint_mask = torch.zeros_like(lightness)
        x = torch.cat(((lightness - c.l_cent) / c.l_norm, hint_ab / c.ab_norm, hint_mask - c.mask_cent), dim=1)
        conv1_2 = self.model1(x)
        conv2_2 = self.model2(conv1_2[:, :, ::2, ::2])
        conv3_3 = self.model3(conv2_2[:, :, ::2, ::2])
        conv4_3 = self.model4(conv3_3[:, :, ::2, ::2])
        conv7_3 = self.model7(self.model6(self.model5(conv4_3)))
        conv8_3 = self.model8(self.model8up(conv7_3) + self.model3short8(conv3_3))
        conv9_3 = self.model9(self.model9up(conv8_3) + self.model2short9(conv2_2))
        conv10_2 = self.model10(self.model10up(conv9_3) + self.model1short10(conv1_2))
        return conv8_3, conv10_2
