"""The colorization pipeline around any registered colorization network (:data:`colorstyle_core.colorizers.COLORIZERS`).

For each image (batched and on device), following each network's authors (its entry's
:class:`~colorstyle_core.colorizers.entry.Recipe`):

1. the network input at network resolution (Zhang et al.: L of the image resized as
   Pillow's bicubic does; DDColor: the gray sRGB of the L of a bilinear 512 x 512 resize);
2. predict ab at network resolution;
3. upsample ab to the original size (bilinearly; an authors' own way under ``gamut="clip"``);
4. join it with the L of the *original, full-resolution* image and convert to sRGB.

With ``gamut="preserve-l"`` (default) the output's Lab lightness equals the input's (step 4
keeps L; colours outside sRGB lose chroma, not lightness, see
:func:`colorstyle_core.color.lab_to_rgb`). ``gamut="clip"`` reproduces each authors' output
(:class:`~colorstyle_core.colorizers.entry.LabJoin` with scikit-image's clipping for Zhang et al.,
:class:`~colorstyle_core.colorizers.entry.OpenCVLab` for DDColor).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from colorstyle_core import color, lab8
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.colorizers.entry import ColorizerEntry
from colorstyle_core.devices import Precision, autocast, resolve_device
from colorstyle_core.hints import ColorHints, rasterize_batch
from colorstyle_core.loader import WeightsSource, load_strict, load_weights
from colorstyle_core.models import layout_of
from colorstyle_core.provenance import Provenance
from colorstyle_core.resample import band_as_float, bands
from colorstyle_core.synthetic import generate


class Colorizer:
    """A loaded colorization network plus the Lab pipeline around it: built once (``Colorizer.from_weights``),
    called on batches; each frame colorized on its own (not :attr:`recurrent`: no chain along a shot).

    Args:
        net: the entry's network, weights loaded, on its device.
        entry: the colorizer (:data:`colorstyle_core.colorizers.COLORIZERS`): its weight record, network size
            and pre/post-processing.
        provenance: which weights are loaded.
        gamut: ``"preserve-l"`` (default: output L == input L) or ``"clip"`` (the authors' pipeline), see the module.

    Attributes:
        keep_network_ab: when set, :attr:`network_ab` keeps the last network output.
        network_ab: ``(N, 2, h, w)`` float32 ab at network resolution of the last batch (CPU),
            when ``keep_network_ab`` (``colorstyle colorize --save-ab``).
    """

    recurrent = False

    def __init__(self, net: nn.Module, entry: ColorizerEntry, provenance: Provenance,
                 gamut: color.GamutMode = "preserve-l"):
        # channels_last: 15-25% faster convolutions on CPU (oneDNN) and on GPUs with tensor cores
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.entry = entry
        self.spec = entry.weights
        self.net_size = entry.net_size
        self.provenance = provenance
        self.gamut: color.GamutMode = gamut
        self.supports_hints = entry.takes_hints
        self.precision: Precision = "fp32"  # execution.precision (devices.autocast: CUDA only)
        self.keep_network_ab = False
        self.network_ab: Tensor | None = None
        self.compile_colour_math(False)

    def compile_colour_math(self, enabled: bool = True) -> None:
        """Run the per-pixel colour maths (the frames' L, Lab -> sRGB) compiled (``execution.compile_colour``).

        Eager's values to float rounding, 3-5x faster on a CPU after a one-off compile per frame size
        (:func:`~colorstyle_core.devices.compiled`). An authors' own post-processing in OpenCV (DDColor's
        ``clip``) is not affected.
        """
        self.post = self.entry.recipe.post(self.gamut, enabled)

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
            ValueError: unknown colorizer name, or one that is not one network (``deepexemplar``).
            colorstyle_core.loader.WeightsError: weights missing, corrupt or of the wrong layout.
        """
        entry = network_entry(name)
        if untrained_seed is not None:
            weights = generate(layout_of(entry.network), untrained_seed, entry.generation)
            return cls.from_state_dict(name, weights, Provenance.generated(name, untrained_seed), device=device,
                                       gamut=gamut)
        net = entry.network()
        provenance = Provenance.from_resolved(name, load_weights(net, entry.weights, source))
        return cls(net.to(resolve_device(device)), entry, provenance, gamut)

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
            ValueError: unknown colorizer name, or one that is not one network (``deepexemplar``).
            colorstyle_core.loader.WeightsLayoutError: the tensors do not fit the architecture.
        """
        entry = network_entry(name)
        net = entry.network()
        load_strict(net, state_dict, provenance.origin)
        return cls(net.to(resolve_device(device)), entry, provenance, gamut)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _network(self, net_in: Tensor, hint_ab: Tensor | None, hint_mask: Tensor | None) -> Tensor:
        """The network alone: its input (:meth:`network_input`) in, ``(N, 2, h', w')`` float32 ab out (mixed
        precision on GPUs when ``precision`` asks for it; the Lab maths around it stays float32)."""
        with autocast(net_in.device, self.precision):
            ab = self.net(net_in) if hint_ab is None else self.net(net_in, hint_ab, hint_mask)
        ab = ab.float().contiguous()  # planar (the network computes channels_last): 2x faster upsampling
        if self.keep_network_ab:
            self.network_ab = ab.cpu()
        return ab

    def _hint_tensors(self, hints: Sequence[ColorHints | None] | None, sizes: Sequence[tuple[int, int]]
                      ) -> tuple[Tensor | None, Tensor | None]:
        if hints is not None and any(h is not None and not h.empty for h in hints) and not self.supports_hints:
            raise ValueError(f"{self.spec.name} takes no colour hints; use "
                             f"{' or '.join(e.name for e in COLORIZERS if e.takes_hints)}")
        return rasterize_batch(hints, sizes, self.net_size, self.device)

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
        net_in = torch.cat([self.entry.recipe.network_input(b, self.net_size) for b in batches])
        sizes = [tuple(b.shape[-2:]) for b in batches for _ in range(b.shape[0])]
        hint_ab, hint_mask = self._hint_tensors(hints, sizes)
        ab_small = self._network(net_in, hint_ab, hint_mask)
        out, k = [], 0
        for b in batches:
            n = b.shape[0]
            out.append((self.post.lightness(b), self.post.upsample(ab_small[k : k + n], tuple(b.shape[-2:]))))
            k += n
        return out

    @torch.inference_mode()
    def predict_ab_bands(self, image: Tensor, hints: ColorHints | None = None, band_rows: int = 512
                         ) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        """:meth:`predict_ab` for one large image, a band of rows at a time (never all of it in float).

        The network input is made from bands of rows (Zhang et al.:
        :func:`~colorstyle_core.resample.resize_like_pil_bicubic_banded`, bit-identical to the unbanded
        resize; DDColor: :func:`~colorstyle_core.resample.resize_bilinear_banded`, equal to float rounding),
        and each band's ab is upsampled from the network's output with the rows of the same
        interpolation (bilinear: equal to float rounding; nearest: identical); :meth:`compose` joins them.

        Args:
            image: ``(1, C, H, W)`` float32 in ``[0, 1]`` or uint8 (any device; bands move to the model's).
            hints: SIGGRAPH17 hints for this image.
            band_rows: rows per band.
        Yields:
            ``(start, stop, L, ab)``: rows ``[start, stop)``: ``(1, 1, rows, W)`` L in ``[0, 100]`` and
            ``(1, 2, rows, W)`` ab, float32 on the model's device.
        """
        h, w = image.shape[-2:]
        net_in = self.entry.recipe.network_input_banded(image, self.net_size, band_rows, self.device)
        hint_ab, hint_mask = self._hint_tensors(None if hints is None else [hints], [(h, w)])
        ab_small = self._network(net_in, hint_ab, hint_mask)
        upsample = self.post.band_upsampler(ab_small, (h, w))
        for r0, r1 in bands(h, band_rows):
            band = band_as_float(image, r0, r1, self.device)
            yield r0, r1, self.post.lightness(band), upsample(r0, r1)

    def compose(self, lightness: Tensor, ab: Tensor) -> Tensor:
        """Join L and ab into sRGB: ``(N, 1, H, W)`` + ``(N, 2, H, W)`` -> ``(N, 3, H, W)`` in ``[0, 1]``."""
        return self.post.compose(lightness, ab)

    def compose_sampled(self, lightness: Tensor, ab: Tensor, stride: int) -> Tensor:
        """:meth:`compose` on every ``stride``-th pixel in each direction, eagerly.

        Every step of the composition is per pixel, so this equals
        ``compose(lightness, ab)[..., ::stride, ::stride]`` at ``1 / stride**2`` of the cost and
        without compiling for another size: for statistics over a frame (the temporal chain's
        per-frame difference). Shapes as :meth:`compose`, the output ``(N, 3, ceil(H / stride),
        ceil(W / stride))``.
        """
        lab = torch.cat((lightness[..., ::stride, ::stride], ab[..., ::stride, ::stride]), dim=1)
        return self.post.compose_eager(lab)

    @torch.inference_mode()
    def network_input(self, images: Tensor) -> Tensor:
        """The network's input for ``(N, C, H, W)`` images in ``[0, 1]`` (the benchmark's network-alone loop)."""
        return self.entry.recipe.network_input(images.to(self.device, torch.float32), self.net_size)

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


def network_entry(name: str) -> ColorizerEntry:
    """The registry entry of a one-network colorizer (what :class:`Colorizer` runs).

    Raises:
        ValueError: an unknown name, or a colorizer of another shape (its own runtime builds it:
            :data:`colorstyle_core.pipeline.RUNTIMES`).
    """
    entry = COLORIZERS.get(name)
    if not isinstance(entry, ColorizerEntry):
        raise ValueError(f"{name} is not a one-network colorizer: FramePipeline.build builds it with its own runtime")
    return entry


@torch.inference_mode()
def colorize_rgb8(colorizer: Colorizer, frames: Tensor) -> Tensor | None:
    """Colorize 8-bit frames on the CPU in one pass per pixel around the network (video on CPU actors).

    The network's input is made as :meth:`Colorizer.predict_ab` makes it (from one channel when the frames are
    gray); its ab goes with the frames through the post-processing's
    :meth:`~colorstyle_core.colorizers.entry.Post.join_rgb8`, which gives :meth:`Colorizer.__call__`'s output
    rounded to 8 bits without a float copy of the frames (one level apart on rare pixels: see
    :mod:`colorstyle_core.lab8`).

    Args:
        frames: ``(N, 3, H, W)`` uint8 sRGB in channels-last memory (a view of the decoder's
            ``(N, H, W, 3)`` arrays), on the CPU.
    Returns:
        ``(N, 3, H, W)`` uint8 sRGB, channels-last (a view of ``(N, H, W, 3)`` arrays); ``None`` where
        this colorizer has no such pass (the model on a GPU, an authors' post-processing, no numba),
        and the caller takes the float path.
    """
    if (not colorizer.post.rgb8 or colorizer.device.type != "cpu" or frames.dtype != torch.uint8 or frames.ndim != 4
            or frames.shape[1] != 3 or not frames.permute(0, 2, 3, 1).is_contiguous()):
        return None
    rgb8 = frames.permute(0, 2, 3, 1).numpy()
    threads = torch.get_num_threads()
    if lab8.is_gray(rgb8, threads):
        net_in = colorizer.entry.recipe.network_input_gray(frames[:, :1].float().div_(255.0), colorizer.net_size)
    else:
        net_in = colorizer.entry.recipe.network_input(frames.contiguous().float().div_(255.0), colorizer.net_size)
    out = colorizer.post.join_rgb8(rgb8, colorizer._network(net_in, None, None), threads)
    return torch.from_numpy(out).permute(0, 3, 1, 2)
