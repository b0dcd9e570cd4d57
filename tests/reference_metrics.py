"""Independent implementations of the field's video metrics, written from their definitions for the tests:
scipy's ``entropy`` for the Jensen-Shannon divergence and numpy's ``histogram``, as TCVC's evaluation script
does with OpenCV's ``calcHist`` (its channel order, B, G, R, does not change a mean over the channels)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    return float(0.5 * stats.entropy(p, m) + 0.5 * stats.entropy(q, m))


def tcvc_cdc(frames: list[np.ndarray], dilations=(1, 2, 4), weights=(1 / 3, 1 / 3, 1 / 3)) -> float:
    """CDC of ``(H, W, 3)`` uint8 frames as TCVC's ``calculate_cdc`` computes it for one video."""
    hists = [[np.histogram(f[..., c], bins=256, range=(0, 256))[0] / (f.shape[0] * f.shape[1]) for c in range(3)]
             for f in frames]
    per_channel = []
    for c in range(3):
        total = 0.0
        for d, w in zip(dilations, weights):
            total += w * np.mean([_js(hists[i][c], hists[i + d][c]) for i in range(len(frames) - d)])
        per_channel.append(total)
    return float(np.mean(per_channel))


def hasler_colourfulness(frame: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) on 0..255 values, without absolute values."""
    r, g, b = (frame[..., c].astype(np.float64) for c in range(3))
    rg, yb = r - g, (r + g) / 2 - b
    return float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
