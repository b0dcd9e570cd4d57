"""The colorization pipeline around a colorization network: Zhang et al.'s ECCV16 and SIGGRAPH17, DDColor.

For each image (batched and on device), following each network's authors:

1. the network input: **Zhang et al.** (``colorizers/util.py``): the sRGB image resized to
   256 x 256 as Pillow's bicubic does, then its L (gray inputs: L of the gray level);
   **DDColor** (``ddcolor/pipeline.py``): the image resized to 512 x 512 bilinearly (no
   anti-aliasing, aspect ratio not kept), its L turned back into gray sRGB (R = G = B);
2. predict ab at network resolution;
3. upsample ab to the original size: bilinearly; DDColor with ``gamut="clip"`` as its
   authors do, nearest (PyTorch's legacy ``nearest``);
4. join it with the L of the *original, full-resolution* image and convert to sRGB.

With ``gamut="preserve-l"`` (default) the output's Lab lightness equals the input's (step 4
keeps L; colours outside sRGB lose chroma, not lightness, see
:func:`colorstyle_core.color.lab_to_rgb`). ``gamut="clip"`` reproduces each authors' output:
scikit-image's clipping for Zhang et al., OpenCV's float Lab (L of the original and the
Lab -> sRGB conversion, clipping linear RGB) for DDColor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorstyle_core import color
from colorstyle_core.devices import Precision, autocast, compiled, resolve_device
from colorstyle_core.hints import ColorHints, rasterize
from colorstyle_core.loader import WeightsSource, load_strict, load_weights
from colorstyle_core.models import build
from colorstyle_core.provenance import Provenance
from colorstyle_core.resample import (
    band_as_float,
    bands,
    resize_band,
    resize_bilinear,
    resize_bilinear_banded,
    resize_like_pil_bicubic,
    resize_like_pil_bicubic_banded,
    resize_matrix,
    resize_nearest_band,
)
from colorstyle_core.synthetic import generated_state_dict
from colorstyle_core.weights import COLORIZERS, DDColorContract, LabContract, WeightSpec, get_spec


def _ddcolor_input(small: Tensor) -> Tensor:
    """DDColor's input from the resized image: its L as gray sRGB, ``(N, C, h, w)`` -> ``(N, 3, h, w)``.

    As the authors make it: L with OpenCV's float Lab, a = b = 0, back to RGB with OpenCV. OpenCV's
    tabulated sRGB curves make that gray differ from the exact one (:func:`~colorstyle_core.color.l_to_gray`)
    by up to 0.002 (mean 0.0008, measured), which moves the network's ab by about 0.06 on average,
    so the input is made with OpenCV itself (on the CPU: 512 x 512 pixels, about a millisecond).
    """
    lightness = color.rgb_to_l_opencv(small)
    return color.lab_to_rgb_opencv(torch.cat((lightness, torch.zeros_like(lightness).expand(-1, 2, -1, -1)), dim=1))


class Colorizer:
    """A loaded colorization network plus the Lab pipeline around it.

    Build it once (``Colorizer.from_weights``) and call it on batches.

    Args:
        net: an :class:`~colorstyle_core.models.ECCV16Colorizer`,
            :class:`~colorstyle_core.models.SIGGRAPH17Colorizer` or :class:`~colorstyle_core.models.DDColor`,
            weights loaded, on its device.
        spec: the weight record (its contract sets the network size and the input recipe).
        provenance: which weights are loaded.
        gamut: ``"preserve-l"`` (default: output L == input L) or ``"clip"`` (the
            authors' pipeline), see the module.

    Attributes:
        keep_network_ab: when set, :attr:`network_ab` keeps the last network output.
        network_ab: ``(N, 2, h, w)`` float32 ab at network resolution of the last batch (CPU),
            when ``keep_network_ab`` (``colorstyle colorize --save-ab``).
    """

    def __init__(self, net: nn.Module, spec: WeightSpec, provenance: Provenance,
                 gamut: color.GamutMode = "preserve-l"):
        if not isinstance(spec.preprocess, (LabContract, DDColorContract)):
            raise ValueError(f"{spec.name} is not a colorizer")
        # channels_last: 15-25% faster convolutions on CPU (oneDNN) and on GPUs with tensor cores
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.spec = spec
        self.contract: LabContract | DDColorContract = spec.preprocess
        self.ddcolor = isinstance(spec.preprocess, DDColorContract)
        self.provenance = provenance
        self.gamut: color.GamutMode = gamut
        self.supports_hints = spec.name == "siggraph17"
        self.precision: Precision = "fp32"  # execution.precision (devices.autocast: CUDA only)
        self.keep_network_ab = False
        self.network_ab: Tensor | None = None
        self.compile_colour_math(False)

    def compile_colour_math(self, enabled: bool = True) -> None:
        """Run the per-pixel colour maths (the frames' L, Lab -> sRGB) compiled (``execution.compile_colour``).

        Eager's values to float rounding, 3-5x faster on a CPU after a one-off compile per frame size
        (:func:`~colorstyle_core.devices.compiled`). DDColor's ``clip`` mode runs OpenCV and is not affected.
        """
        gamut = self.gamut
        solver = compiled(color.nearest_at_luminance, enabled, dynamic=True)  # the out-of-gamut pixels

        def join_to_rgb(lightness: Tensor, ab: Tensor) -> Tensor:
            return color.lab_to_rgb(torch.cat((lightness, ab), dim=1), gamut, solver=solver)

        self._rgb_to_l = compiled(color.rgb_to_l, enabled)
        self._join_to_rgb = compiled(join_to_rgb, enabled)

    @classmethod
    def from_weights(
        cls,
        name: str,
        source: WeightsSource = WeightsSource(),
        *,
        device: str | torch.device | None = None,
        gamut: color.GamutMode = "preserve-l",
        untrained_seed: int | None = None,
    ) -> Colorizer:
        """Build ``name`` and load its weights through the one loader.

        Args:
            name: a colorizer of the registry (``eccv16``, ``siggraph17``, ``ddcolor_*``).
            source: user-given URI / sha256 / storage options (default: cache, then URL).
            device: ``None`` = CUDA if available, else CPU.
            gamut: see the class.
            untrained_seed: if not ``None``, load generated UNTRAINED weights with this
                seed instead of real ones (explicit smoke runs only).
        Raises:
            ValueError: unknown colorizer name.
            colorstyle_core.loader.WeightsError: weights missing, corrupt or of the wrong layout.
        """
        if name not in COLORIZERS:
            raise ValueError(f"unknown colorizer {name!r}; choose one of {', '.join(COLORIZERS)}")
        if untrained_seed is not None:
            return cls.from_state_dict(name, generated_state_dict(name, untrained_seed),
                                       Provenance.generated(name, untrained_seed), device=device, gamut=gamut)
        net = build(name)
        provenance = Provenance.from_resolved(name, load_weights(net, get_spec(name), source))
        return cls(net.to(resolve_device(device)), get_spec(name), provenance, gamut)

    @classmethod
    def from_state_dict(
        cls,
        name: str,
        state_dict: Mapping[str, Tensor],
        provenance: Provenance,
        *,
        device: str | torch.device | None = None,
        gamut: color.GamutMode = "preserve-l",
    ) -> Colorizer:
        """Build ``name`` from already verified tensors (see ``loader.load_verified_state_dict``).

        Raises:
            ValueError: unknown colorizer name.
            colorstyle_core.loader.WeightsLayoutError: the tensors do not fit the architecture.
        """
        if name not in COLORIZERS:
            raise ValueError(f"unknown colorizer {name!r}; choose one of {', '.join(COLORIZERS)}")
        net = build(name)
        load_strict(net, state_dict, provenance.origin)
        return cls(net.to(resolve_device(device)), get_spec(name), provenance, gamut)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _network_input(self, image: Tensor) -> Tensor:
        """``(N, C, H, W)`` sRGB/gray in [0, 1] -> the network's input at network size.

        Zhang et al.: ``(N, 1, h, w)`` L; DDColor: ``(N, 3, h, w)`` gray sRGB with the image's L.
        """
        if self.ddcolor:
            return _ddcolor_input(resize_bilinear(image, self.contract.net_size))
        return color.rgb_to_l(resize_like_pil_bicubic(image, self.contract.net_size))

    def _network(self, net_in: Tensor, hint_ab: Tensor | None, hint_mask: Tensor | None) -> Tensor:
        """The network alone: its input (:meth:`_network_input`) in, ``(N, 2, h', w')`` float32 ab out (mixed
        precision on GPUs when ``precision`` asks for it; the Lab maths around it stays float32)."""
        with autocast(net_in.device, self.precision):
            ab = self.net(net_in) if hint_ab is None else self.net(net_in, hint_ab, hint_mask)
        ab = ab.float().contiguous()  # planar (the network computes channels_last): 2x faster upsampling
        if self.keep_network_ab:
            self.network_ab = ab.cpu()
        return ab

    @property
    def _authors_opencv(self) -> bool:
        """DDColor's ``--gamut clip``: the authors' OpenCV float Lab and nearest ab upsampling."""
        return self.ddcolor and self.gamut == "clip"

    def lightness(self, rgb: Tensor) -> Tensor:
        """L of full-resolution images: ``(N, C, H, W)`` in ``[0, 1]`` -> ``(N, 1, H, W)`` float32 in ``[0, 100]``
        (OpenCV's float Lab for DDColor's ``clip``, else :func:`colorstyle_core.color.rgb_to_l`)."""
        return color.rgb_to_l_opencv(rgb) if self._authors_opencv else self._rgb_to_l(rgb)

    def _upsample(self, ab_small: Tensor, size: tuple[int, int]) -> Tensor:
        if self._authors_opencv:
            return ab_small if tuple(ab_small.shape[-2:]) == tuple(size) else F.interpolate(ab_small, size=size)
        return resize_bilinear(ab_small, size)

    def _hint_tensors(self, hints: Sequence[ColorHints | None] | None, sizes: Sequence[tuple[int, int]]
                      ) -> tuple[Tensor | None, Tensor | None]:
        if hints is None or all(h is None or h.empty for h in hints):
            return None, None
        if not self.supports_hints:
            raise ValueError(f"{self.spec.name} takes no colour hints; use siggraph17")
        if len(hints) != len(sizes):
            raise ValueError(f"{len(hints)} hint sets for {len(sizes)} images")
        abs_, masks = [], []
        for h, hw in zip(hints, sizes):
            ab, mask = rasterize(h or ColorHints(), hw, self.contract.net_size, self.device)
            abs_.append(ab)
            masks.append(mask)
        return torch.cat(abs_), torch.cat(masks)

    @torch.inference_mode()
    def predict_ab_list(self, images: Sequence[Tensor], hints: Sequence[ColorHints | None] | None = None
                        ) -> list[tuple[Tensor, Tensor]]:
        """Predict full-resolution ab for images of any (mixed) sizes in one network batch.

        Images of the same shape are resized and upsampled as one batch; all of them go
        through the network together (its input is always the network size).

        Args:
            images: each ``(C, H, W)`` float32 in ``[0, 1]``, C = 1 (gray) or 3 (sRGB;
                reduced to its L), any device.
            hints: one :class:`ColorHints` (or ``None``) per image; SIGGRAPH17 only.
        Returns:
            Per image ``(L, ab)``: ``(1, H, W)`` L in ``[0, 100]`` of the original and
            ``(2, H, W)`` predicted ab, float32, on the model's device.
        Raises:
            ValueError: hints for a model that takes none, or a hint count that differs.
            colorstyle_core.hints.HintsError: a hint outside its image.
        """
        if not images:
            return []
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault(tuple(img.shape), []).append(i)
        batches = [torch.stack([images[i] for i in idx]) for idx in groups.values()]
        order = [i for idx in groups.values() for i in idx]
        out: list[tuple[Tensor, Tensor]] = [None] * len(images)  # type: ignore[list-item]
        for idx, (lightness, ab) in zip(groups.values(),
                                        self._predict(batches, None if hints is None else [hints[i] for i in order])):
            for j, i in enumerate(idx):
                out[i] = (lightness[j], ab[j])
        return out

    @torch.inference_mode()
    def predict_ab(self, images: Tensor, hints: Sequence[ColorHints | None] | None = None) -> tuple[Tensor, Tensor]:
        """:meth:`predict_ab_list` for a batch of same-size images (video frames).

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]``, C = 1 or 3.
            hints: one :class:`ColorHints` (or ``None``) per image; SIGGRAPH17 only.
        Returns:
            ``(L, ab)``: ``(N, 1, H, W)`` L in ``[0, 100]`` and ``(N, 2, H, W)`` ab, float32,
            on the model's device.
        """
        return self._predict([images], hints)[0]

    def _predict(self, batches: Sequence[Tensor], hints: Sequence[ColorHints | None] | None
                 ) -> list[tuple[Tensor, Tensor]]:
        """The one colorizer path: same-shape batches -> ``(L, ab)`` per batch, one network call.

        ``hints`` (if any) follow the images of ``batches`` in order.
        """
        dev = self.device
        batches = [b.to(dev, torch.float32) for b in batches]
        net_in = torch.cat([self._network_input(b) for b in batches])
        sizes = [tuple(b.shape[-2:]) for b in batches for _ in range(b.shape[0])]
        hint_ab, hint_mask = self._hint_tensors(hints, sizes)
        ab_small = self._network(net_in, hint_ab, hint_mask)
        out, k = [], 0
        for b in batches:
            n = b.shape[0]
            out.append((self.lightness(b), self._upsample(ab_small[k : k + n], tuple(b.shape[-2:]))))
            k += n
        return out

    @torch.inference_mode()
    def predict_ab_bands(self, image: Tensor, hints: ColorHints | None = None, band_rows: int = 512
                         ) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        """:meth:`predict_ab` for one large image, a band of rows at a time (never all of it in float).

        The network input is made by :func:`~colorstyle_core.resample.resize_like_pil_bicubic_banded`
        (bit-identical to the unbanded resize; DDColor: :func:`~colorstyle_core.resample.resize_bilinear_banded`,
        equal to float rounding), and each band's ab is upsampled from the network's output with
        the rows of the same interpolation (bilinear: equal to float rounding; nearest: identical);
        :meth:`compose` joins them.

        Args:
            image: ``(1, C, H, W)`` float32 in ``[0, 1]`` or uint8 (any device; bands move to the model's).
            hints: SIGGRAPH17 hints for this image.
            band_rows: rows per band.
        Yields:
            ``(start, stop, L, ab)``: rows ``[start, stop)``: ``(1, 1, rows, W)`` L in ``[0, 100]`` and
            ``(1, 2, rows, W)`` ab, float32 on the model's device.
        """
        h, w = image.shape[-2:]
        net_h, net_w = self.contract.net_size
        if self.ddcolor:
            net_in = _ddcolor_input(resize_bilinear_banded(image, (net_h, net_w), band_rows).to(self.device))
        else:
            net_in = color.rgb_to_l(resize_like_pil_bicubic_banded(image, (net_h, net_w), band_rows).to(self.device))
        hint_ab, hint_mask = self._hint_tensors(None if hints is None else [hints], [(h, w)])
        ab_small = self._network(net_in, hint_ab, hint_mask)
        wy, wx = resize_matrix(net_h, h, "bilinear"), resize_matrix(net_w, w, "bilinear")
        for r0, r1 in bands(h, band_rows):
            band = band_as_float(image, r0, r1, self.device)
            if self._authors_opencv:
                ab = resize_nearest_band(ab_small, (h, w), r0, r1)
            else:
                ab = resize_band(ab_small, wy[r0:r1], wx)
            yield r0, r1, self.lightness(band), ab

    def compose(self, lightness: Tensor, ab: Tensor) -> Tensor:
        """Join L and ab into sRGB: ``(N, 1, H, W)`` + ``(N, 2, H, W)`` -> ``(N, 3, H, W)`` in ``[0, 1]``."""
        if self._authors_opencv:
            return color.lab_to_rgb_opencv(torch.cat((lightness, ab), dim=1))
        return self._join_to_rgb(lightness, ab)

    def compose_sampled(self, lightness: Tensor, ab: Tensor, stride: int) -> Tensor:
        """:meth:`compose` on every ``stride``-th pixel in each direction, eagerly.

        Every step of the composition is per pixel, so this equals
        ``compose(lightness, ab)[..., ::stride, ::stride]`` at ``1 / stride**2`` of the cost and
        without compiling for another size: for statistics over a frame (the temporal chain's
        per-frame difference). Shapes as :meth:`compose`, the output ``(N, 3, ceil(H / stride),
        ceil(W / stride))``.
        """
        lab = torch.cat((lightness[..., ::stride, ::stride], ab[..., ::stride, ::stride]), dim=1)
        if self._authors_opencv:
            return color.lab_to_rgb_opencv(lab)
        return color.lab_to_rgb(lab, self.gamut)

    @torch.inference_mode()
    def network_input(self, images: Tensor) -> Tensor:
        """The network's input for ``(N, C, H, W)`` images in ``[0, 1]`` (the benchmark's network-alone loop)."""
        return self._network_input(images.to(self.device, torch.float32))

    @torch.inference_mode()
    def __call__(self, images: Tensor, hints: Sequence[ColorHints | None] | None = None) -> Tensor:
        """Colorize a batch of same-size images.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]``, C = 1 (gray) or 3 (reduced to L).
            hints: per-image hints (SIGGRAPH17).
        Returns:
            ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]`` on the model's device; its Lab L
            equals the input's.
        """
        lightness, ab = self.predict_ab(images, hints)
        return self.compose(lightness, ab)

    @torch.inference_mode()
    def colorize_list(self, images: Sequence[Tensor], hints: Sequence[ColorHints | None] | None = None
                      ) -> list[Tensor]:
        """Colorize images of mixed sizes with one network batch: each ``(C, H, W)`` -> ``(3, H, W)``."""
        return [self.compose(l[None], ab[None])[0] for l, ab in self.predict_ab_list(images, hints)]
