"""Zhang et al., Colorful Image Colorization (ECCV 2016): the ab classification network.

Same modules, in the same order, as the authors' PyTorch port (``colorizers/eccv16.py``
in richzhang/colorization), so ``colorization_release_v2-9b330a0b.pth`` loads with
``strict=True``. The network predicts a distribution over 313 quantised ab bins at
1/4 resolution; the ``model_out`` 1x1 convolution (no bias) holds the bin centres,
so ``model_out(softmax(logits))`` is the expected ab (annealed-mean-free variant
released by the authors), upsampled 4x bilinearly to the input size.
"""

from __future__ import annotations

from torch import Tensor, nn

from colorstyle_core.models._blocks import conv_relu_stack
from colorstyle_core.weights import LabContract


class ECCV16Colorizer(nn.Module):
    """ECCV16 colorization network.

    Args:
        contract: Lab normalisation the weights were trained with.
    """

    def __init__(self, contract: LabContract = LabContract()):
        super().__init__()
        self.contract = contract
        self.model1 = nn.Sequential(*conv_relu_stack([1, 64, 64], stride_last=2))
        self.model2 = nn.Sequential(*conv_relu_stack([64, 128, 128], stride_last=2))
        self.model3 = nn.Sequential(*conv_relu_stack([128, 256, 256, 256], stride_last=2))
        self.model4 = nn.Sequential(*conv_relu_stack([256, 512, 512, 512]))
        self.model5 = nn.Sequential(*conv_relu_stack([512, 512, 512, 512], dilation=2))
        self.model6 = nn.Sequential(*conv_relu_stack([512, 512, 512, 512], dilation=2))
        self.model7 = nn.Sequential(*conv_relu_stack([512, 512, 512, 512]))
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, kernel_size=4, stride=2, padding=1, bias=True),
            nn.ReLU(inplace=True),
            *conv_relu_stack([256, 256, 256], norm=False),
            nn.Conv2d(256, 313, kernel_size=1, bias=True),
        )
        self.softmax = nn.Softmax(dim=1)
        self.model_out = nn.Conv2d(313, 2, kernel_size=1, bias=False)
        self.upsample4 = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)

    def forward(self, lightness: Tensor) -> Tensor:
        """Predict ab from L.

        Args:
            lightness: ``(N, 1, H, W)`` float32, L in ``[0, 100]``; H and W multiples of 8
                (the authors use 256 x 256).
        Returns:
            ``(N, 2, H, W)`` float32 ab in Lab units (about ``[-110, 110]``).
        """
        ab = self.model_out(self.softmax(self.logits(lightness)))
        return self.upsample4(ab) * self.contract.ab_norm

    def logits(self, lightness: Tensor) -> Tensor:
        """The 313-way ab-bin scores before the softmax (what training's cross-entropy sees).

        Args:
            lightness: ``(N, 1, H, W)`` float32, L in ``[0, 100]``.
        Returns:
            ``(N, 313, H/4, W/4)`` float32.
        """
        c = self.contract
        x = (lightness - c.l_cent) / c.l_norm
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6, self.model7):
            x = block(x)
        return self.model8(x)

