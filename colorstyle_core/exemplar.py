"""Colour from a reference photo: Deep Exemplar-based Video Colorization (Zhang et al., CVPR 2019).

A frame's gray and a colour reference are matched through VGG19 features (:class:`WarpNet`: the
reference's colours warped onto the frame, with a confidence map); :class:`ColorVidNet` then
predicts the frame's ab from its L, the warped ab, the confidence and **the previous frame's
output**, so a shot's colours stay steady (the first frame of a chain gets zeros, as in the authors'
test script). Everything runs at the working size, half the authors' ``--image_size`` (432 x 768 ->
216 x 384).

Two output pipelines (``gamut``):

- ``preserve-l`` (colorstyle's default): any frame size; the frame's L and the reference are
  resized (bilinear, antialiased) to the working size, the network's ab upsampled bilinearly to
  the frame's size and joined with its full-resolution L (output L = input L,
  :func:`colorstyle_core.color.lab_to_rgb`). No gain, no smoothing: the network's ab as trained.
- ``clip``: the authors' test script (``test.py`` of zhangmozhe/Deep-Exemplar-based-Video-Colorization,
  commit 2c41bdf): every image resized with scikit-image to cover ``image_size`` and centre-cropped
  (8-bit, truncated), scikit-image's Lab, the working size by bilinear halving, the reference's RGB
  for its VGG features from its Lab by the authors' formula, the ab upsampled x2 bilinearly, x 1.25,
  smoothed by OpenCV contrib's fast global smoother guided by the 8-bit L (lambda 500, sigma 4),
  scikit-image's Lab -> sRGB, clipped and truncated to 8 bits (:mod:`colorstyle_core.exemplar_authors`). The
  output has the authors' geometry (``image_size``), not the input's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorstyle_core import color, imageio
from colorstyle_core.colorizers.deepexemplar import BUILDERS, NAME, WEIGHTS, generated_weights, load_state_dicts
from colorstyle_core.colorizers.entry import LabJoin
from colorstyle_core.cuts import DEFAULT_CUT_THRESHOLD, cut_score
from colorstyle_core.devices import resolve_device
from colorstyle_core.exemplar_authors import authors_lab, authors_lab_to_rgb, authors_post
from colorstyle_core.loader import load_strict
from colorstyle_core.models.deepexemplar import normalize_features
from colorstyle_core.provenance import Provenance
from colorstyle_core.resample import band_as_float, bands, resize_matrix

AUTHORS_IMAGE_SIZE = (432, 768)
"""The authors' ``--image_size`` default ``(height, width)`` in pixels; the network works at half of it."""
TEMPERATURE = 1e-10
"""The correspondence softmax's temperature in the authors' test script (winner takes all)."""
REFERENCE_CACHE = 16
"""Prepared references an actor keeps (each: the reference's Lab and VGG activations at the working size)."""


@dataclass(frozen=True)
class Reference:
    """A prepared reference: its Lab at the working size and its VGG activations.

    Attributes:
        lab: ``(1, 3, h, w)`` float32 Lab, L centred (``L - 50``).
        features: the normalised ``relu2_2 ... relu5_2`` activations (:func:`normalize_features`).
        name: where it came from (for reports and errors).
    """

    lab: Tensor
    features: list[Tensor]
    name: str


@dataclass
class ChainState:
    """The recurrence between frames of a shot: the previous frame's Lab at the working size
    (``(1, 3, h, w)`` float32, L centred), ``None`` at the start of a chain.

    Attributes:
        cut_threshold: in a job, :func:`colorstyle_core.cuts.cut_score` between consecutive frames' L above
            which the chain restarts (a new shot must not take the last one's colours); ``None``: never
            (the authors' script, a folder that is one shot).
        last_l: the previous frame's L at the working size, for the cut test.
        restarts: how many times the chain restarted at a cut.
    """

    previous: Tensor | None = None
    cut_threshold: float | None = None
    last_l: Tensor | None = None
    restarts: int = 0


def starts_a_shot(state: ChainState, l_work: Tensor) -> bool:
    """Whether a frame's centred working-size L ``(1, 1, h, w)`` starts a new shot after ``state``'s last frame
    (:func:`~colorstyle_core.cuts.cut_score` above ``state.cut_threshold``); records it as the last frame."""
    cut = state.cut_threshold is not None and state.last_l is not None and \
        float(cut_score(state.last_l + 50.0, l_work + 50.0)[0]) > state.cut_threshold
    state.last_l = l_work
    return cut


def scene_cuts(colorizer: ExemplarColorizer, frames: Iterable[tuple[int, Tensor]]) -> list[int]:
    """The frames of a film that start a new shot, as a job's chain decides them (:meth:`ExemplarColorizer.new_chain`,
    the same test on the same working-size L): ``(index, (1, 1, H, W) L in [0, 100])`` in frame order -> indices
    (the first frame is not counted)."""
    state, cuts = colorizer.new_chain(), []
    for index, lightness in frames:
        if starts_a_shot(state, (_to_work(lightness, colorizer.work_size) - 50.0).to(colorizer.device)):
            cuts.append(index)
    return cuts


class ExemplarColorizer:
    """The three networks, loaded once, and the two pipelines of the module.

    Besides :meth:`reference` / :meth:`colorize` (the command, a folder as one shot), it answers what
    the frame pipeline asks of a colorizer in a job (:meth:`predict_ab_list`, :meth:`compose`; a
    sequence's chain through :meth:`new_chain` and :meth:`step_ab`), with the job's reference
    (:meth:`set_reference`).

    Args:
        nets: ``{"vgg", "warpnet", "colornet"}`` modules, weights loaded.
        provenance: which files (or generated weights) they hold.
        gamut: ``preserve-l`` or ``clip`` (see the module).
        image_size: the authors' ``--image_size`` ``(height, width)``, multiples of 16; the working size
            is half of it.
        device: where the networks run.
    Attributes:
        keep_network_ab: when set, :attr:`network_ab` keeps the last frame's network output.
        network_ab: the last frame's network ab, ``(1, 2, h, w)`` float32 on the CPU (``--save-ab``).
    Raises:
        ValueError: an ``image_size`` that is not multiples of 16.
    """

    recurrent = True
    supports_hints = False

    def __init__(self, nets: Mapping[str, nn.Module], provenance: Provenance, gamut: color.GamutMode = "preserve-l",
                 image_size: tuple[int, int] | None = None, device: str | torch.device | None = "cpu"):
        image_size = tuple(image_size or AUTHORS_IMAGE_SIZE)
        if len(image_size) != 2 or image_size[0] % 16 or image_size[1] % 16 or min(image_size) < 16:
            raise ValueError(f"image_size {image_size} must be two multiples of 16 (the VGG's poolings at half size)")
        self.device = resolve_device(device)
        self.vgg, self.warpnet, self.colornet = (nets[r].eval().requires_grad_(False).to(self.device)
                                                 for r in ("vgg", "warpnet", "colornet"))
        self.provenance = provenance
        self.gamut: color.GamutMode = gamut
        self.image_size = image_size
        self.work_size = (image_size[0] // 2, image_size[1] // 2)
        self.keep_network_ab = False
        self.network_ab: Tensor | None = None
        self.job_reference: Reference | None = None
        self._references: dict[str, Reference] = {}
        self._join = LabJoin("preserve-l")

    @property
    def weights_tag(self) -> str:
        return self.provenance.describe()

    @property
    def net_size(self) -> tuple[int, int]:
        """The working size ``(height, width)`` in pixels."""
        return self.work_size

    @classmethod
    def from_state_dicts(cls, state_dicts: Mapping[str, Mapping[str, Tensor]], provenance: Provenance,
                         **kwargs) -> ExemplarColorizer:
        """Build the three networks and load ``state_dicts`` (by role) strictly.

        Raises:
            colorstyle_core.loader.WeightsLayoutError: a file's keys or shapes are not the published layout.
        """
        nets = {}
        for role, build in BUILDERS.items():
            nets[role] = build()
            load_strict(nets[role], state_dicts[role], f"{WEIGHTS[role].filename}")
        return cls(nets, provenance, **kwargs)

    @classmethod
    def from_seed(cls, seed: int, **kwargs) -> ExemplarColorizer:
        """Generated UNTRAINED weights (tests and explicit smoke runs)."""
        return cls.from_state_dicts(generated_weights(seed), Provenance.generated(NAME, seed), **kwargs)

    @classmethod
    def from_prefix(cls, prefix: str, sha256: Mapping[str, str] | None = None,
                    storage_options: Mapping[str, object] | None = None, **kwargs) -> ExemplarColorizer:
        """:func:`load_state_dicts` and build.

        Raises:
            colorstyle_core.loader.WeightsError: a file missing, without a hash, corrupt, or of the wrong layout.
        """
        return cls.from_state_dicts(*load_state_dicts(prefix, sha256, storage_options), **kwargs)

    # ---- references -----------------------------------------------------------------------------

    @torch.no_grad()
    def reference(self, rgb8: np.ndarray, name: str = "reference") -> Reference:
        """Prepare a colour reference: ``(H, W, 3)`` uint8 (or float32 in ``[0, 1]``) sRGB -> :class:`Reference`
        at the working size.

        Raises:
            ValueError: not such an image.
        """
        _check_image(rgb8, name, floats=True)
        if self.gamut == "clip":
            lab = F.interpolate(authors_lab(_as_uint8(rgb8), self.image_size), scale_factor=0.5, mode="bilinear")
            rgb = authors_lab_to_rgb(torch.cat((lab[:, :1] + 50.0, lab[:, 1:]), dim=1))
        else:
            rgb = _to_work(_as_float(rgb8), self.work_size)
            lab = color.rgb_to_lab(rgb)
            lab = torch.cat((lab[:, :1] - 50.0, lab[:, 1:]), dim=1)
        lab, rgb = lab.to(self.device), rgb.to(self.device)
        return Reference(lab, normalize_features(self.vgg(rgb)), name)

    # ---- frames ---------------------------------------------------------------------------------

    @torch.no_grad()
    def network(self, l_work: Tensor, reference: Reference, state: ChainState) -> Tensor:
        """One step of the recurrence: ``(1, 1, h, w)`` centred L at the working size -> ``(1, 2, h, w)`` ab.

        Updates ``state.previous`` to this frame's Lab (the next frame's input).
        """
        l_work = l_work.to(self.device)
        if starts_a_shot(state, l_work):
            state.previous = None
            state.restarts += 1
        gray = ((l_work + 50.0) / 100.0).expand(-1, 3, -1, -1)  # the authors' gray2rgb_batch
        features = normalize_features(self.vgg(gray))
        warped, confidence = self.warpnet(reference.lab, features, reference.features, TEMPERATURE)
        previous = state.previous if state.previous is not None else torch.zeros_like(reference.lab)
        ab = self.colornet(torch.cat((l_work, warped[:, 1:3], confidence, previous), dim=1))
        state.previous = torch.cat((l_work, ab), dim=1)
        if self.keep_network_ab:
            self.network_ab = ab.float().cpu()
        return ab

    def colorize(self, rgb: np.ndarray, reference: Reference, state: ChainState) -> np.ndarray:
        """Colorize one frame (the next of ``state``'s chain).

        Args:
            rgb: ``(H, W, 3)`` uint8, or float32 in ``[0, 1]`` (16-bit scans; ``clip`` rounds it to 8 bits).
            reference: from :meth:`reference`.
            state: the chain this frame continues (updated).
        Returns:
            uint8 sRGB: ``(H, W, 3)`` under ``preserve-l`` (L kept), ``image_size + (3,)`` under ``clip``.
        Raises:
            ValueError: not such an image.
        """
        _check_image(rgb, "frame", floats=True)
        if self.gamut == "clip":
            return self._colorize_authors(_as_uint8(rgb), reference, state)
        lightness = self.lightness(_as_float(rgb))
        out = self.compose(lightness, self.step_ab(state, lightness, reference))
        return color.to_uint8(out)[0].permute(1, 2, 0).numpy()

    def _colorize_authors(self, rgb8: np.ndarray, reference: Reference, state: ChainState) -> np.ndarray:
        lab_large = authors_lab(rgb8, self.image_size)
        lab = F.interpolate(lab_large, scale_factor=0.5, mode="bilinear")
        return authors_post(lab_large[:, :1], self.network(lab[:, :1], reference, state).float().cpu())

    # ---- in a job: what the frame pipeline asks of a colorizer (colorstyle's pipeline, preserve-l) -------

    def set_reference(self, rgb: np.ndarray, name: str) -> None:
        """The job's reference (``pipeline.colorize.reference``), prepared once per actor; see :meth:`reference`."""
        self.job_reference = self.reference(rgb, name)

    def new_chain(self) -> ChainState:
        """A chain for the frames of a film; it restarts at scene cuts
        (:data:`colorstyle_core.cuts.DEFAULT_CUT_THRESHOLD`)."""
        return ChainState(cut_threshold=DEFAULT_CUT_THRESHOLD)

    def lightness(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` sRGB or gray in ``[0, 1]`` -> ``(N, 1, H, W)`` float32 L in ``[0, 100]``."""
        return color.rgb_to_l(images if images.shape[1] == 3 else images.expand(-1, 3, -1, -1))

    def reference_for(self, key: str, load: Callable[[], np.ndarray]) -> Reference:
        """A prepared reference by URI, ``load()`` giving its pixels the first time (the last
        :data:`REFERENCE_CACHE` kept: a film's keyframes, an archive's few references)."""
        if key not in self._references:
            if len(self._references) >= REFERENCE_CACHE:
                self._references.pop(next(iter(self._references)))
            self._references[key] = self.reference(load(), key)
        return self._references[key]

    def step_ab(self, state: ChainState, lightness: Tensor, reference: Reference | None = None) -> Tensor:
        """The next frame of ``state``'s chain: ``(1, 1, H, W)`` L -> ``(1, 2, H, W)`` ab at the frame's size
        (bilinear from the working size), on the frame's device, with ``reference`` (default: the job's).

        Raises:
            RuntimeError: no reference given and none set (:meth:`set_reference`).
        """
        reference = reference or self.job_reference
        if reference is None:
            raise RuntimeError(f"{NAME} needs a reference (pipeline.colorize.reference, or a hints file's)")
        ab = self.network(_to_work(lightness, self.work_size) - 50.0, reference, state)
        return F.interpolate(ab.float().to(lightness.device), size=lightness.shape[-2:], mode="bilinear",
                             align_corners=False)

    def predict_ab_list(self, images: Sequence[Tensor], hints: object = None,
                        references: Sequence[Reference | None] | None = None) -> list[tuple[Tensor, Tensor]]:
        """Stills: ``(C, H, W)`` images in ``[0, 1]`` -> ``[((1, H, W) L, (2, H, W) ab)]``, each a chain of one,
        each with its reference (``None``: the job's).

        Raises:
            ValueError: hints (this model takes a reference, not hints).
        """
        if hints is not None and any(h is not None for h in hints):  # type: ignore[union-attr]
            raise ValueError(f"{NAME} takes a reference, not colour hints")
        out = []
        for i, image in enumerate(images):
            lightness = self.lightness(image[None].float())
            reference = references[i] if references is not None else None
            out.append((lightness[0], self.step_ab(ChainState(), lightness, reference)[0]))
        return out

    @torch.inference_mode()
    def predict_ab_bands(self, image: Tensor, hints: object = None, band_rows: int = 512,
                         reference: Reference | None = None) -> Iterator[tuple[int, int, Tensor, Tensor]]:
        """A large still (above :data:`~colorstyle_core.pipeline_types.LARGE_IMAGE_PIXELS`), a band of rows at a
        time, never all of it in float: a chain of one, as :meth:`predict_ab_list`. The working-size L comes from
        bands of input rows (:func:`_to_work_banded`); each band's ab is rows of the bilinear upsampling.

        Args:
            image: ``(1, C, H, W)`` float32 in ``[0, 1]`` or uint8 (any device).
            hints: must be ``None`` (this model takes a reference).
            band_rows: input rows per band.
            reference: the still's reference (default: the job's).
        Yields:
            ``(start, stop, L, ab)``: rows ``[start, stop)``: ``(1, 1, rows, W)`` L in ``[0, 100]`` and
            ``(1, 2, rows, W)`` ab, float32 on the network's device.
        Raises:
            ValueError: hints given.
            RuntimeError: no reference given and none set.
        """
        if hints is not None:
            raise ValueError(f"{NAME} takes a reference, not colour hints")
        h, w = image.shape[-2:]
        lightness = _to_work_banded(image, self.work_size, band_rows, self.lightness).to(self.device)
        reference = reference or self.job_reference
        if reference is None:
            raise RuntimeError(f"{NAME} needs a reference (pipeline.colorize.reference, or a hints file's)")
        ab = self.network(lightness - 50.0, reference, ChainState()).float()
        upsample = self._join.band_upsampler(ab, (h, w))
        for r0, r1 in bands(h, band_rows):
            yield r0, r1, self.lightness(band_as_float(image, r0, r1, self.device)), upsample(r0, r1)

    def compose(self, lightness: Tensor, ab: Tensor) -> Tensor:
        """``(N, 1, H, W)`` L + ``(N, 2, H, W)`` ab -> ``(N, 3, H, W)`` sRGB with L kept."""
        return self._join.compose(lightness, ab)

    def compose_sampled(self, lightness: Tensor, ab: Tensor, stride: int) -> Tensor:
        """:meth:`compose` on every ``stride``-th pixel in each direction."""
        return self._join.compose_eager(torch.cat((lightness[..., ::stride, ::stride], ab[..., ::stride, ::stride]),
                                                  dim=1))

    def colorize_sequence(self, frames: Sequence[np.ndarray], reference: Reference,
                          state: ChainState | None = None) -> list[np.ndarray]:
        """Colorize consecutive frames of one shot in order (one chain); see :meth:`colorize`."""
        state = state or ChainState()
        return [self.colorize(f, reference, state) for f in frames]


def _check_image(rgb: np.ndarray, name: str, floats: bool = False) -> None:
    dtypes = (np.uint8, np.float32) if floats else (np.uint8,)
    if not isinstance(rgb, np.ndarray) or rgb.dtype not in dtypes or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) {' or '.join(np.dtype(d).name for d in dtypes)} image, "
                         f"got {getattr(rgb, 'shape', None)} {getattr(rgb, 'dtype', type(rgb).__name__)}")


def _as_float(rgb: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8 or float32 in ``[0, 1]`` -> ``(1, 3, H, W)`` float32 in ``[0, 1]``."""
    t = imageio.to_tensor(np.ascontiguousarray(rgb), copy=False)  # read only here: a read-only array is fine
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.contiguous()


def _as_uint8(rgb: np.ndarray) -> np.ndarray:
    return rgb if rgb.dtype == np.uint8 else (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _to_work(images: Tensor, size: tuple[int, int]) -> Tensor:
    """``(N, C, H, W)`` float -> ``size`` bilinearly with antialiasing (colorstyle's default pipeline)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _to_work_banded(image: Tensor, size: tuple[int, int], band_rows: int, lightness: Callable[[Tensor], Tensor]
                    ) -> Tensor:
    """:func:`_to_work` of a large image's L, from bands of ``band_rows`` input rows: ``W_y @ L @ W_x^T`` with the
    antialiased bilinear :func:`~colorstyle_core.resample.resize_matrix` (equal to float rounding), accumulated in
    float64; ``(1, C, H, W)`` float or uint8 -> ``(1, 1, *size)`` float32 on the CPU."""
    h, w = image.shape[-2:]
    wy = torch.from_numpy(resize_matrix(h, size[0], "bilinear", antialias=True))
    wx = torch.from_numpy(resize_matrix(w, size[1], "bilinear", antialias=True))
    out = torch.zeros(size, dtype=torch.float64)
    for r0, r1 in bands(h, band_rows):
        out += wy[:, r0:r1] @ (lightness(band_as_float(image, r0, r1, "cpu"))[0, 0].double() @ wx.T)
    return out.float()[None, None]
