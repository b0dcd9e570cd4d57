"""DDColor (Kang, Yang, Ji, Xie, Wang, Zhang. DDColor: Towards Photo-Realistic Image Colorization
via Dual Decoders. ICCV 2023).

Written from the paper and the authors' published checkpoint layout (piddnad/DDColor,
Apache-2.0): the module names and their registration order reproduce the checkpoint's
state_dict key for key (``../shared/checkpoints/ddcolor_layout_convnext_{t,l}.json``),
so the published files load with ``strict=True``.

Data flow for an ``(N, 3, 512, 512)`` gray sRGB input (R = G = B, ``[0, 1]``):

1. ImageNet normalisation with the checkpoint's ``mean``/``std`` buffers;
2. **encoder**: ConvNeXt (Liu et al. 2022); the features after stages 0..3 pass through
   the extra channel LayerNorms ``norm0..3`` (strides 4, 8, 16, 32). The classifier's final
   ``norm`` is kept for the checkpoint but not used, as in the authors' code;
3. **pixel decoder**: three wide U-Net blocks (x2 pixel shuffle of the deeper map,
   BatchNorm'd skip, 3x3 conv) give maps at strides 16, 8 and 4 (512, 512 and 256
   channels), then a x4 pixel shuffle with a 2x2 blur gives per-pixel features
   ``(N, 256, 512, 512)``;
4. **colour decoder**: 100 learned colour queries refined by 9 transformer layers
   (cross-attention to one of the three maps in turn, self-attention, FFN; post-norm),
   each map with a normalised sine position embedding and a learned level embedding;
5. colour maps = ``einsum(query embeddings, per-pixel features)``: ``(N, 100, H, W)``;
6. **refine**: a 1x1 convolution over ``[colour maps, normalised input]`` gives ab
   (``(N, 2, H, W)``, Lab units; no output scaling).

Spectral-normalised convolutions (Miyato et al. 2018) hold ``weight_orig``, ``weight_u``
and ``weight_v``; at inference the weight is ``W = W_orig / (u . (W_orig.reshape(out, -1) @ v))``
with the stored u and v (no power iteration), as PyTorch's ``spectral_norm`` does in eval mode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorstyle_core.weights import DDColorContract

ENCODERS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),  # ConvNeXt-T
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),  # ConvNeXt-L
}
"""ConvNeXt depths and widths per DDColor size."""


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``(N, C, H, W)`` (ConvNeXt's ``channels_first`` LayerNorm).

    ``y = (x - mean_c) / sqrt(var_c + eps) * weight + bias``, biased variance over C.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv -> LayerNorm -> Linear (4C) -> GELU -> Linear (C), scaled by ``gamma``, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))  # layer scale; registered first, as in the checkpoint
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """ConvNeXt backbone (Liu et al. 2022) returning the four stage features through ``norm0..3``.

    Args:
        depths, dims: blocks and channels per stage (see :data:`ENCODERS`).
    """

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...]):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))]
            + [nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
               for i in range(3)]
        )
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)]) for n, d in zip(depths, dims))
        for i, d in enumerate(dims):
            self.add_module(f"norm{i}", LayerNorm2d(d))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)  # the classifier's; in the checkpoint, unused

    def forward(self, x: Tensor) -> list[Tensor]:
        """``(N, 3, H, W)`` -> four ``(N, dims[i], H / 2^(i+2), W / 2^(i+2))`` normalised features."""
        feats = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            feats.append(getattr(self, f"norm{i}")(x))
        return feats


class _Encoder(nn.Module):
    def __init__(self, size: str):
        super().__init__()
        self.arch = ConvNeXt(*ENCODERS[size])


class SpectralConv2d(nn.Module):
    """A convolution with spectral normalisation, evaluated as PyTorch's ``spectral_norm`` does in eval.

    State: ``bias`` (optional), ``weight_orig`` ``(out, in, k, k)``, buffers ``weight_u`` ``(out,)``
    and ``weight_v`` ``(in * k * k,)``; ``W = weight_orig / sigma`` with
    ``sigma = u . (weight_orig.reshape(out, -1) @ v)`` (Miyato et al. 2018, eq. 1 with the stored
    power-iteration vectors).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        if bias:
            self.bias = nn.Parameter(torch.zeros(c_out))
        else:
            self.bias = None
        self.weight_orig = nn.Parameter(torch.empty(c_out, c_in, kernel_size, kernel_size))
        self.register_buffer("weight_u", torch.empty(c_out))
        self.register_buffer("weight_v", torch.empty(c_in * kernel_size * kernel_size))
        self.padding = padding

    def weight(self) -> Tensor:
        """The normalised weight ``(out, in, k, k)``."""
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w.reshape(w.shape[0], -1), self.weight_v))
        return w / sigma

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class PixelShuffleUp(nn.Module):
    """1x1 spectral conv (+ BatchNorm) -> ReLU -> pixel shuffle by ``scale`` -> optional 2x2 blur.

    The blur (replicate-pad one row and column at the top-left, 2x2 mean) removes the pixel
    shuffle's checkerboard (Sugawara et al. 2018).
    """

    def __init__(self, c_in: int, c_out: int, scale: int = 2, blur: bool = True, batch_norm: bool = False):
        super().__init__()
        conv: list[nn.Module] = [SpectralConv2d(c_in, c_out * scale * scale, bias=not batch_norm)]
        if batch_norm:
            conv.append(nn.BatchNorm2d(c_out * scale * scale))
        self.conv = nn.Sequential(*conv)
        self.scale = scale
        self.blur = blur

    def forward(self, x: Tensor) -> Tensor:
        x = F.pixel_shuffle(F.relu(self.conv(x)), self.scale)
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1) if self.blur else x


class UnetBlockWide(nn.Module):
    """Upsample the deeper map x2, join the BatchNorm'd skip feature, 3x3 spectral conv -> ReLU -> BatchNorm."""

    def __init__(self, up_in: int, skip_in: int, c_out: int):
        super().__init__()
        self.shuf = PixelShuffleUp(up_in, c_out, blur=True, batch_norm=True)
        self.bn = nn.BatchNorm2d(skip_in)
        self.conv = nn.Sequential(SpectralConv2d(c_out + skip_in, c_out, 3, padding=1, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(c_out))

    def forward(self, up: Tensor, skip: Tensor) -> Tensor:
        return self.conv(F.relu(torch.cat((self.shuf(up), self.bn(skip)), dim=1)))


def sine_position_embedding(feature: Tensor, num_feats: int = 128, temperature: float = 10000.0) -> Tensor:
    """Normalised 2-D sine position embedding (DETR, Carion et al. 2020) for a map ``(N, C, H, W)``.

    Positions ``1..H`` and ``1..W`` are scaled to ``(0, 2 pi]``; each axis gets ``num_feats``
    channels, ``sin`` and ``cos`` interleaved at frequencies ``temperature^(2 floor(i/2) / num_feats)``.

    Returns:
        ``(N, 2 * num_feats, H, W)`` float32, y channels first.
    """
    n, _, h, w = feature.shape
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float32, device=feature.device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=feature.device)
    y = (y / (y[-1] + eps) * scale).view(1, h, 1, 1).expand(n, h, w, 1)
    x = (x / (x[-1] + eps) * scale).view(1, 1, w, 1).expand(n, h, w, 1)
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=feature.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    pos_x, pos_y = x / dim_t, y / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class _SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: Tensor, query_pos: Tensor) -> Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, value=tgt, need_weights=False)[0])


class _CrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        out = self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory, need_weights=False)[0]
        return self.norm(tgt + out)


class _FFNLayer(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: Tensor) -> Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class _MLP(nn.Module):
    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MultiScaleColorDecoder(nn.Module):
    """Colour queries refined against three feature maps in turn (post-norm transformer decoder).

    Args:
        in_channels: channels of the three maps (strides 16, 8, 4).
        dim: query width; queries: how many colour queries; layers: decoder layers;
        heads: attention heads; ffn: FFN hidden width.
    """

    def __init__(self, in_channels: tuple[int, int, int] = (512, 512, 256), dim: int = 256, queries: int = 100,
                 layers: int = 9, heads: int = 8, ffn: int = 2048):
        super().__init__()
        self.query_feat = nn.Embedding(queries, dim)
        self.query_embed = nn.Embedding(queries, dim)
        self.level_embed = nn.Embedding(len(in_channels), dim)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, dim, kernel_size=1) for c in in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(_SelfAttentionLayer(dim, heads) for _ in range(layers))
        self.transformer_cross_attention_layers = nn.ModuleList(_CrossAttentionLayer(dim, heads)
                                                                for _ in range(layers))
        self.transformer_ffn_layers = nn.ModuleList(_FFNLayer(dim, ffn) for _ in range(layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.color_embed = _MLP(dim, 3)

    def forward(self, maps: list[Tensor], pixel_features: Tensor) -> Tensor:
        """Three maps ``(N, C_i, H_i, W_i)`` and ``(N, 256, H, W)`` per-pixel features -> ``(N, Q, H, W)``."""
        n = pixel_features.shape[0]
        src, pos = [], []
        for i, m in enumerate(maps):  # each (H_i W_i, N, dim), sequence first
            pos.append(sine_position_embedding(m, self.query_feat.embedding_dim // 2).flatten(2).permute(2, 0, 1))
            src.append((self.input_proj[i](m).flatten(2) + self.level_embed.weight[i][None, :, None]).permute(2, 0, 1))
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, n, 1)
        out = self.query_feat.weight.unsqueeze(1).repeat(1, n, 1)
        for i, (cross, self_attn, ffn) in enumerate(zip(self.transformer_cross_attention_layers,
                                                        self.transformer_self_attention_layers,
                                                        self.transformer_ffn_layers)):
            level = i % len(maps)
            out = ffn(self_attn(cross(out, src[level], pos[level], query_pos), query_pos))
        color_embed = self.color_embed(self.decoder_norm(out).transpose(0, 1))  # (N, Q, dim)
        return torch.einsum("bqc,bchw->bqhw", color_embed, pixel_features)


class _DualDecoder(nn.Module):
    def __init__(self, dims: tuple[int, ...], nf: int = 512):
        super().__init__()
        self.layers = nn.Sequential(UnetBlockWide(dims[3], dims[2], nf), UnetBlockWide(nf, dims[1], nf),
                                    UnetBlockWide(nf, dims[0], nf // 2))
        self.last_shuf = PixelShuffleUp(nf // 2, nf // 2, scale=4, blur=True, batch_norm=False)
        self.color_decoder = MultiScaleColorDecoder((nf, nf, nf // 2))

    def forward(self, feats: list[Tensor]) -> Tensor:
        out0 = self.layers[0](feats[3], feats[2])
        out1 = self.layers[1](out0, feats[1])
        out2 = self.layers[2](out1, feats[0])
        return self.color_decoder([out0, out1, out2], self.last_shuf(out2))


class DDColor(nn.Module):
    """The DDColor network.

    Args:
        size: ``"tiny"`` (ConvNeXt-T encoder) or ``"large"`` (ConvNeXt-L).
        contract: input size and normalisation the weights were trained with.
    Raises:
        ValueError: an unknown size.
    """

    def __init__(self, size: str = "tiny", contract: DDColorContract = DDColorContract()):
        super().__init__()
        if size not in ENCODERS:
            raise ValueError(f"unknown DDColor size {size!r}; use one of {', '.join(ENCODERS)}")
        self.contract = contract
        self.register_buffer("mean", torch.tensor(contract.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(contract.std).view(1, 3, 1, 1))
        self.encoder = _Encoder(size)
        self.decoder = _DualDecoder(ENCODERS[size][1])
        self.refine_net = nn.Sequential(nn.Sequential(SpectralConv2d(100 + 3, 2, kernel_size=1, bias=True)))

    def forward(self, gray_rgb: Tensor) -> Tensor:
        """Predict ab.

        Args:
            gray_rgb: ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]`` with R = G = B (the network
                size is ``contract.net_size``; H and W must be multiples of 32).
        Returns:
            ``(N, 2, H, W)`` float32 ab in Lab units.
        """
        x = (gray_rgb - self.mean) / self.std
        color_maps = self.decoder(self.encoder.arch(x))
        return self.refine_net(torch.cat((color_maps, x), dim=1))
