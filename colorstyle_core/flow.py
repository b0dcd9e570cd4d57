"""Dense optical flow, backward warping, occlusion masks and warping error (scene cuts: ``cuts.py``).

Pure functions on batched torch tensors (flow is estimated with OpenCV on the CPU
and returned on the caller's device). No file I/O, no printing; inputs are never
modified.

Conventions, the same everywhere in this module:

* **Pixel coordinates**: ``x`` = column, ``y`` = row, in pixels, with pixel centres
  at integers; ``(0, 0)`` is the centre of the top-left pixel and ``(W - 1, H - 1)``
  the centre of the bottom-right one.
* **Flow** ``F_{a->b}`` ("flow from frame a to frame b") is a ``(N, 2, H, W)``
  float32 tensor on the pixel grid of frame **a**; channel 0 is ``dx``, channel 1
  is ``dy``, in pixels, such that

      ``a(p) ~= b(p + F_{a->b}(p))``.

  This is OpenCV's convention for ``calc(prev=a, next=b)`` and the ``F_{t=>t+1}``
  of Lai et al. 2018. ``estimate_flow(a_l, b_l)`` returns ``F_{a->b}``. So the
  forward flow of a video, ``F_{t->t+1} = estimate_flow(l[t], l[t + 1])``, says
  where each pixel of frame t went in frame t + 1.
* **Warping** is backward: ``warp(b, F_{a->b})(p) = b(p + F_{a->b}(p))``, which
  brings frame b onto frame a's grid (``~= a`` where nothing is occluded).
* **Masks** are ``(N, 1, H, W)`` float32 in ``{0, 1}`` (1 = trusted) on the grid of
  the flow they test. ``consistency_mask(F_{a->b}, F_{b->a})`` lives on a's grid.

For the short-term temporal loss of Ruder et al. 2016 (stylize frame i, pulled
towards the previous stylized frame), the flow must live on frame i's grid and point
back: ``pair = bidirectional_flow(l[i], l[i - 1])``; target
``warp(stylized[i - 1], pair.fwd)``, weight ``pair.mask``. For E_warp of Lai et al.
2018 it is the other way round, see :class:`WarpingError`.

Luminance inputs are Lab lightness ``L`` in ``[0, 100]`` (``color.rgb_to_l``), as
``(N, 1, H, W)`` floating tensors; a single frame may also be ``(H, W)`` or
``(1, H, W)`` (wherever ``(H, W)`` is written below). OpenCV sees ``round(2.55 * L)`` as
8-bit gray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

FLOW_METHODS = ("dis", "farneback")
"""Flow estimators :func:`estimate_flow` accepts."""

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
"""DIS (Kroeger et al., ECCV 2016) presets by name; ``None`` means ``"medium"``."""

DEFAULT_DIS_PRESET = "medium"

_DIS_MIN_SIDE = 32
# OpenCV's DIS rejects frames with both sides < 12 and, in opencv-python-headless
# 5.0.0, crashes the process (segfault) on short wide frames such as 16x128 or 24x96
# (all presets; measured). Frames of height and width >= 32 never crashed (heights
# 32-63 with widths up to 4000, widths 12-31 with heights up to 2000, 1/2/16 threads),
# so smaller sides are padded (edge replicated, bottom/right) to 32 and the flow cropped.

FARNEBACK_PARAMS = {
    "pyr_scale": 0.5,
    "levels": 4,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
"""Arguments of ``cv2.calcOpticalFlowFarneback`` (Farneback, SCIA 2003): OpenCV's
tutorial values with one more pyramid level for motions of tens of pixels."""

# Forward-backward consistency (Ruder, Dosovitskiy, Brox 2016, Sec. 3.2; Sundaram et
# al. 2010). Squared lengths in px^2.
FB_REL_TOL = 0.01
FB_ABS_TOL = 0.5
MB_REL_TOL = 0.01
MB_ABS_TOL = 0.002



# ----------------------------------------------------------------------------- input checks


def _as_l_batch(lightness: Tensor, name: str) -> Tensor:
    """``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)`` floating L -> ``(N, 1, H, W)`` (a view)."""
    if not isinstance(lightness, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(lightness).__name__}")
    if not lightness.is_floating_point():
        raise TypeError(
            f"{name}: expected floating Lab lightness L in [0, 100], got dtype {lightness.dtype} "
            "(convert 8-bit gray with colorstyle_core.color.rgb_to_l first)"
        )
    if lightness.ndim == 2:
        lightness = lightness[None, None]
    elif lightness.ndim == 3 and lightness.shape[0] == 1:
        lightness = lightness[None]
    if lightness.ndim != 4 or lightness.shape[1] != 1:
        raise ValueError(f"{name}: expected (H, W), (1, H, W) or (N, 1, H, W) lightness, got {tuple(lightness.shape)}")
    if lightness.shape[-1] < 1 or lightness.shape[-2] < 1:
        raise ValueError(f"{name}: empty image {tuple(lightness.shape)}")
    return lightness


def _check_pair(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} must have the same shape")


def _check_flow(flow: Tensor, name: str = "flow") -> None:
    if not isinstance(flow, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(flow).__name__}")
    if flow.ndim != 4 or flow.shape[1] != 2 or not flow.is_floating_point():
        raise ValueError(f"{name}: expected floating (N, 2, H, W), got {tuple(flow.shape)} {flow.dtype}")


def _check_images(images: Tensor, name: str) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"{name}: expected floating (N, C, H, W), got {tuple(images.shape)} {images.dtype}")


def _l_to_uint8(lightness: Tensor) -> np.ndarray:
    """``(N, 1, H, W)`` L in [0, 100] -> ``(N, H, W)`` contiguous uint8 ``round(2.55 L)``."""
    x = lightness.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("lightness contains NaN or infinite values")
    return (x[:, 0] * 2.55).round_().clamp_(0.0, 255.0).to(torch.uint8).contiguous().numpy()


def _resolve_method(method: str, preset: str | None) -> int | None:
    """Validate names; return the DIS preset constant (``None`` for Farneback)."""
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {FLOW_METHODS}")
    if method == "farneback":
        if preset is not None:
            raise ValueError(f"preset {preset!r} applies to method 'dis' only; pass preset=None for 'farneback'")
        return None
    name = DEFAULT_DIS_PRESET if preset is None else preset
    if name not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {name!r}; expected one of {tuple(DIS_PRESETS)}")
    return DIS_PRESETS[name]


# ----------------------------------------------------------------------------- flow


def estimate_flow(src_l: Tensor, dst_l: Tensor, method: str = "dis", preset: str | None = None) -> Tensor:
    """Dense optical flow ``F_{src->dst}`` from luminance, with OpenCV.

    ``src(p) ~= dst(p + flow(p))`` (module conventions): ``estimate_flow(l[t], l[t+1])``
    is the forward flow of a video, ``estimate_flow(l[t+1], l[t])`` the backward one.

    Methods: ``"dis"`` is Dense Inverse Search (Kroeger, Timofte, Dai, Van Gool,
    ECCV 2016; ``cv2.DISOpticalFlow``) with preset ``"ultrafast"``, ``"fast"`` or
    ``"medium"`` (default); frames with a side below 32 pixels are edge-padded to 32
    for DIS, which crashes on some small frames. ``"farneback"`` is Farneback's
    polynomial expansion (SCIA 2003; ``cv2.calcOpticalFlowFarneback`` with
    :data:`FARNEBACK_PARAMS`), which takes no preset. Each of the N pairs is computed
    independently on the CPU, with OpenCV's own threads.

    Args:
        src_l, dst_l: Lab lightness L in ``[0, 100]``, floating, ``(H, W)`` or
            ``(N, 1, H, W)``, same shape. Quantised to 8 bits (``round(2.55 L)``,
            clipped) for OpenCV.
        method: ``"dis"`` or ``"farneback"``.
        preset: DIS preset name; ``None`` = ``"medium"``. Must be ``None`` for Farneback.
    Returns:
        ``(N, 2, H, W)`` float32 on ``src_l``'s device (N = 1 for ``(H, W)`` inputs):
        channel 0 = dx, channel 1 = dy, in pixels.
    Raises:
        TypeError: non-tensor or non-floating inputs.
        ValueError: bad shapes, mismatched shapes, non-finite values, unknown method or
            preset, or a preset given with ``"farneback"``.
    """
    dis_preset = _resolve_method(method, preset)
    src = _as_l_batch(src_l, "src_l")
    dst = _as_l_batch(dst_l, "dst_l")
    _check_pair(src, dst, ("src_l", "dst_l"))
    a8, b8 = _l_to_uint8(src), _l_to_uint8(dst)
    flows = []
    if dis_preset is not None:
        dis = cv2.DISOpticalFlow_create(dis_preset)
        h, w = a8.shape[1:]
        pad_h, pad_w = max(0, _DIS_MIN_SIDE - h), max(0, _DIS_MIN_SIDE - w)
        for a, b in zip(a8, b8):
            if pad_h or pad_w:
                a = cv2.copyMakeBorder(a, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
                b = cv2.copyMakeBorder(b, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            flows.append(dis.calc(a, b, None)[:h, :w])
    else:
        p = FARNEBACK_PARAMS
        for a, b in zip(a8, b8):
            flows.append(cv2.calcOpticalFlowFarneback(
                a, b, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"],
                p["poly_n"], p["poly_sigma"], p["flags"],
            ))
    out = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 2) -> (N, 2, H, W)
    return out.to(device=src_l.device, dtype=torch.float32)


# ----------------------------------------------------------------------------- warping


def _sample_positions(flow: Tensor) -> tuple[Tensor, Tensor]:
    """Absolute sample coordinates ``(x, y)``, each ``(N, H, W)``: ``p + flow(p)``."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    return xs + flow[:, 0], ys + flow[:, 1]


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``image`` with ``flow``: ``out(p) = image(p + flow(p))``.

    Bilinear interpolation (``grid_sample``, ``align_corners=True`` so that the
    normalised coordinates -1 and 1 are the centres of the edge pixels, matching
    this module's pixel-centre coordinates). Samples outside the frame take the
    nearest edge value (``padding_mode="border"``); :func:`in_frame_mask` says which.
    With ``flow = F_{a->b}`` and ``image = b`` the result is b brought onto a's grid.
    Sampling runs in float64 on CPU and CUDA, so ``warp(x, zeros)`` returns ``x``
    exactly for float32 ``x`` and integer flows are exact pixel shifts. Differentiable
    with respect to ``image`` and ``flow``.

    Args:
        image: ``(N, C, H, W)`` float (any range, any C; flows can be warped too).
        flow: ``(N, 2, H, W)`` float, pixels (dx, dy); cast to ``image``'s dtype and device.
    Returns:
        ``(N, C, H, W)``, ``image``'s dtype and device.
    Raises:
        ValueError: wrong ranks, or N, H, W of the two differ.
    """
    _check_images(image, "image")
    _check_flow(flow)
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in N, H or W")
    # float64 sampling keeps the pixel -> [-1, 1] -> pixel round trip exact enough that
    # integer flows (zero included) reproduce float32 pixels bit for bit.
    work = torch.float64 if image.device.type in ("cpu", "cuda") else image.dtype
    x, y = _sample_positions(flow.to(device=image.device, dtype=work))
    return _grid_sample(image.to(work), x, y).to(image.dtype)


def _grid_sample(image: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Bilinear, border-padded sample of ``image`` at pixel coordinates ``x, y`` ``(N, H, W)``."""
    h, w = image.shape[-2:]
    grid = torch.stack((x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _inside(x: Tensor, y: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def in_frame_mask(flow: Tensor) -> Tensor:
    """Where ``p + flow(p)`` falls inside the frame (``0 <= x <= W-1``, ``0 <= y <= H-1``).

    Args:
        flow: ``(N, 2, H, W)`` float, pixels.
    Returns:
        ``(N, 1, H, W)`` float32 in ``{0, 1}`` (1 = inside), on ``flow``'s device.
    """
    _check_flow(flow)
    return _inside(*_sample_positions(flow)).unsqueeze(1).to(torch.float32)


# ----------------------------------------------------------------------------- consistency


def _flow_gradient_sq(flow: Tensor) -> Tensor:
    """``|grad u|^2 + |grad v|^2``, ``(N, H, W)``, central differences ``[-1/2, 0, 1/2]``.

    Borders replicate the edge value (a one-sided half difference there), as the
    3-tap derivative of Ruder et al.'s ``consistencyChecker`` does on its boundary.
    """
    padded = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2])
    dy = 0.5 * (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1])
    return (dx.pow(2) + dy.pow(2)).sum(dim=1)


def _consistency_tests(flow_fwd: Tensor, flow_bwd: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Boolean ``(N, H, W)`` maps ``(in_frame, round_trip_ok, no_motion_boundary)``."""
    _check_flow(flow_fwd, "flow_fwd")
    _check_flow(flow_bwd, "flow_bwd")
    if flow_fwd.shape != flow_bwd.shape:
        raise ValueError(f"flow_fwd {tuple(flow_fwd.shape)} and flow_bwd {tuple(flow_bwd.shape)} differ")
    w_hat = flow_fwd.detach().to(torch.float32)
    x, y = _sample_positions(w_hat)
    # Backward flow sampled at p + fwd(p); float32 is plenty for a 0.5 px^2 tolerance.
    w_tilde = _grid_sample(flow_bwd.detach().to(device=w_hat.device, dtype=torch.float32), x, y)
    sq_fwd, sq_back = w_hat.pow(2).sum(dim=1), w_tilde.pow(2).sum(dim=1)
    round_trip_ok = (w_hat + w_tilde).pow(2).sum(dim=1) <= FB_REL_TOL * (sq_fwd + sq_back) + FB_ABS_TOL
    smooth_ok = _flow_gradient_sq(w_hat) <= MB_REL_TOL * sq_fwd + MB_ABS_TOL
    return _inside(x, y), round_trip_ok, smooth_ok


def consistency_mask(flow_fwd: Tensor, flow_bwd: Tensor) -> Tensor:
    """Forward-backward consistency mask (Ruder, Dosovitskiy, Brox 2016, Sec. 3.2).

    ``flow_fwd = F_{a->b}`` (on a's grid) is the flow being tested and ``flow_bwd =
    F_{b->a}`` (on b's grid) the flow back. In the paper's notation, whose mask lives
    on frame i, ``flow_fwd`` is their backward flow ``w^ = F_{i->i-1}`` and
    ``flow_bwd`` their forward flow ``w = F_{i-1->i}``. With ``w~(p) =
    flow_bwd(p + flow_fwd(p))`` (bilinear), a pixel p of frame a gets 0 when

    * disocclusion: ``|w~ + w^|^2 > 0.01 (|w~|^2 + |w^|^2) + 0.5``, or
    * motion boundary: ``|grad u^|^2 + |grad v^|^2 > 0.01 |w^|^2 + 0.002``
      (central differences ``[-1/2, 0, 1/2]``), or
    * out of frame: ``p + flow_fwd(p)`` lies outside ``[0, W-1] x [0, H-1]``;

    and 1 otherwise. As in the paper's formulas, motion boundaries get 0 and the
    mask is not smoothed (the authors' released checker later adds a Gaussian blur
    and a structure term; not reproduced here).

    Args:
        flow_fwd, flow_bwd: ``(N, 2, H, W)`` float, pixels, same shape.
    Returns:
        ``(N, 1, H, W)`` float32 in ``{0, 1}`` on ``flow_fwd``'s device (1 = flow trusted).
    Raises:
        ValueError: bad or mismatched shapes.
    """
    inside, round_trip_ok, smooth_ok = _consistency_tests(flow_fwd, flow_bwd)
    return (inside & round_trip_ok & smooth_ok).unsqueeze(1).to(torch.float32)


@dataclass(frozen=True)
class FlowPair:
    """Flows both ways between frames a and b, and the trust mask of the forward one.

    Attributes:
        fwd: ``(N, 2, H, W)`` float32 ``F_{a->b}`` on a's grid.
        bwd: ``(N, 2, H, W)`` float32 ``F_{b->a}`` on b's grid.
        mask: ``(N, 1, H, W)`` float32 ``consistency_mask(fwd, bwd)``, on a's grid.
    """

    fwd: Tensor
    bwd: Tensor
    mask: Tensor


def bidirectional_flow(a_l: Tensor, b_l: Tensor, method: str = "dis", preset: str | None = None) -> FlowPair:
    """``F_{a->b}``, ``F_{b->a}`` and the consistency mask of ``F_{a->b}``.

    Args:
        a_l, b_l: L in ``[0, 100]``, ``(H, W)`` or ``(N, 1, H, W)``, same shape.
        method, preset: as in :func:`estimate_flow`.
    Returns:
        :class:`FlowPair`.
    Raises:
        As :func:`estimate_flow`.
    """
    fwd = estimate_flow(a_l, b_l, method, preset)
    bwd = estimate_flow(b_l, a_l, method, preset)
    return FlowPair(fwd=fwd, bwd=bwd, mask=consistency_mask(fwd, bwd))


# ----------------------------------------------------------------------------- warping error


def pair_warping_error(out_t: Tensor, out_t1: Tensor, in_l_t: Tensor, in_l_t1: Tensor,
                       method: str = "dis", preset: str | None = None) -> Tensor:
    """Warping error of one pair of output frames (Lai et al., ECCV 2018, Sec. 5.1).

    ``E = sum_p M_t(p) ||O_t(p) - O^_{t+1}(p)||^2 / (C sum_p M_t(p))`` with
    ``O^_{t+1} = warp(O_{t+1}, F_{t->t+1})``, the flow ``F_{t->t+1} =
    estimate_flow(in_l_t, in_l_t1)`` and the non-occlusion mask ``M_t =
    consistency_mask(F_{t->t+1}, F_{t+1->t})`` both computed from the *input*
    frames, so the output cannot influence what is compared. The ``C`` in the
    denominator follows the authors' ``evaluate_WarpError.py`` (its mask has as many
    channels as the image): E is a mean squared difference per channel. As there,
    a pair with no trusted pixel is averaged over the whole frame. Differences from
    the paper: flow is OpenCV's DIS/Farneback, not FlowNet2, and out-of-frame samples
    are excluded from M.

    Args:
        out_t, out_t1: ``(N, C, H, W)`` float output frames in ``[0, 1]``.
        in_l_t, in_l_t1: ``(N, 1, H, W)`` (or ``(H, W)`` when N = 1) input L in ``[0, 100]``.
        method, preset: flow estimator, as in :func:`estimate_flow`.
    Returns:
        ``(N,)`` float64 on the CPU, in ``[0, 1]`` for outputs in ``[0, 1]``.
    Raises:
        ValueError: shape mismatches between the four inputs, or as :func:`estimate_flow`.
    """
    return warping_error_and_trust(out_t, out_t1, in_l_t, in_l_t1, method, preset)[0]


def warping_error_and_trust(out_t: Tensor, out_t1: Tensor, in_l_t: Tensor, in_l_t1: Tensor,
                            method: str = "dis", preset: str | None = None) -> tuple[Tensor, Tensor]:
    """:func:`pair_warping_error` and, per pair, the fraction of pixels its mask ``M_t`` trusted.

    Returns:
        ``(errors, trusted)``: both ``(N,)`` float64 on the CPU; ``trusted`` in ``[0, 1]``.
    """
    _check_images(out_t, "out_t")
    _check_images(out_t1, "out_t1")
    if out_t.shape != out_t1.shape:
        raise ValueError(f"out_t {tuple(out_t.shape)} and out_t1 {tuple(out_t1.shape)} differ")
    lt, lt1 = _as_l_batch(in_l_t, "in_l_t"), _as_l_batch(in_l_t1, "in_l_t1")
    _check_pair(lt, lt1, ("in_l_t", "in_l_t1"))
    if lt.shape[0] != out_t.shape[0] or lt.shape[-2:] != out_t.shape[-2:]:
        raise ValueError(f"inputs {tuple(lt.shape)} and outputs {tuple(out_t.shape)} differ in N, H or W")
    return masked_warping_error(out_t, out_t1, bidirectional_flow(lt, lt1, method, preset))


def masked_warping_error(out_t: Tensor, out_t1: Tensor, pair: FlowPair) -> tuple[Tensor, Tensor]:
    """The error of :func:`pair_warping_error` with the flow pair already estimated (reused across outputs).

    Args:
        out_t, out_t1: ``(N, C, H, W)`` output frames in ``[0, 1]``.
        pair: :func:`bidirectional_flow` of the *input* frames t and t+1 (flow on t's grid).
    Returns:
        ``(errors, trusted)``: both ``(N,)`` float64 on the CPU.
    """
    o_t = out_t.detach().to(device="cpu", dtype=torch.float64)
    warped = warp(out_t1.detach().to(device="cpu", dtype=torch.float64), pair.fwd.cpu())
    mask = pair.mask.cpu().to(torch.float64)
    sq = (o_t - warped).pow(2).sum(dim=1, keepdim=True)  # (N, 1, H, W)
    channels = o_t.shape[1]
    n_trusted = mask.flatten(1).sum(dim=1)
    masked = (mask * sq).flatten(1).sum(dim=1) / (channels * n_trusted.clamp_min(1.0))
    whole = sq.flatten(1).sum(dim=1) / (channels * sq[0].numel())
    return torch.where(n_trusted > 0, masked, whole), n_trusted / mask[0].numel()


class WarpingError:
    """Streaming E_warp (Lai et al. 2018): the mean of :func:`pair_warping_error` over pairs.

    Feed consecutive pairs ``(O_t, O_{t+1}, L_t, L_{t+1})`` one at a time (or a batch of
    N pairs per call); nothing but the per-pair numbers is kept, so a video never has
    to be in memory. A caller looking at one seam (say between two chunks processed
    separately) reads the entry of :attr:`per_pair` for that pair.

    Example::

        meter = WarpingError()
        for t in range(T - 1):
            meter.update(out[t], out[t + 1], l[t], l[t + 1])
        meter.value, meter.per_pair
    """

    def __init__(self, method: str = "dis", preset: str | None = None) -> None:
        """Args: method, preset: flow estimator for every pair (see :func:`estimate_flow`).

        Raises:
            ValueError: unknown method or preset.
        """
        _resolve_method(method, preset)
        self.method = method
        self.preset = preset
        self._pairs: list[float] = []

    def update(self, out_t: Tensor, out_t1: Tensor, in_l_t: Tensor, in_l_t1: Tensor) -> Tensor:
        """Add the error of one pair (``(C, H, W)`` / ``(H, W)`` frames) or a batch of pairs.

        Args:
            out_t, out_t1: ``(C, H, W)`` or ``(N, C, H, W)`` output frames in ``[0, 1]``.
            in_l_t, in_l_t1: ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)`` input L in ``[0, 100]``.
        Returns:
            ``(N,)`` float64: the errors just added, in order.
        Raises:
            ValueError: as :func:`pair_warping_error`.
        """
        errors = pair_warping_error(_as_image_batch(out_t), _as_image_batch(out_t1), in_l_t, in_l_t1,
                                    self.method, self.preset)
        self._pairs.extend(float(e) for e in errors)
        return errors

    @property
    def count(self) -> int:
        """Number of pairs added so far."""
        return len(self._pairs)

    @property
    def per_pair(self) -> tuple[float, ...]:
        """Error of every pair, in the order added (entry t is the pair t, t + 1)."""
        return tuple(self._pairs)

    @property
    def value(self) -> float:
        """E_warp: mean over pairs. Raises ValueError when no pair was added."""
        if not self._pairs:
            raise ValueError("WarpingError has no frame pairs yet")
        return math.fsum(self._pairs) / len(self._pairs)


def _as_image_batch(image: Tensor) -> Tensor:
    if isinstance(image, Tensor) and image.ndim == 3:
        return image[None]
    return image
