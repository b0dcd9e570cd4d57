"""The report's charts: matplotlib figures (Agg, no pyplot state) rendered to PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from jobs.report.data import VideoSeries, completion_times, median_curves

_COLORS = ["#3b6fb6", "#e07b39", "#4a9d5b", "#b8466b", "#7d5fb2", "#8c6d46", "#3a9aa5", "#777777"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg for PNG

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _style(ax) -> None:
    ax.grid(True, color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)



def chart_throughput(frames: pa.Table, overall_fps: float | None) -> bytes | None:
    """Frames completed per time bin, stacked per actor (frames/s)."""
    t, actors = completion_times(frames)
    t = t[np.isfinite(t)] if len(t) else t
    if len(t) == 0:
        return None
    span = max(float(t.max()), 1e-3)
    bins = min(40, max(4, len(t) // 3))  # about three frames per bin on average, 4 to 40 bins
    width = next((w for w in (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / w <= bins),
                 7200)
    edges = np.arange(0, span + width, width)
    if len(edges) < 2:
        edges = np.array([0, width])
    fig = _figure(11, 3.4)
    ax = fig.add_subplot()
    bottom = np.zeros(len(edges) - 1)
    for k, name in enumerate(sorted(set(actors))):
        mine = np.array([tt for tt, a in zip(t, actors) if a == name])
        counts, _ = np.histogram(mine, bins=edges)
        rate = counts / width
        ax.bar(edges[:-1], rate, width=width, bottom=bottom, align="edge", color=_COLORS[k % len(_COLORS)],
               edgecolor="white", linewidth=0.5, label=name)
        bottom += rate
    if overall_fps:
        ax.axhline(overall_fps, color="#333333", linestyle="--", linewidth=1,
                   label=f"overall {overall_fps:.2f} frames/s")
    ax.set_xlabel("seconds since the first frame started")
    ax.set_ylabel(f"frames/s (per {width:g} s bin)")
    ax.set_xlim(0, edges[-1])
    ax.legend(fontsize=8, frameon=False, ncols=min(5, len(set(actors)) + 1), loc="lower left",
              bbox_to_anchor=(0, 1.0))
    _style(ax)
    return _png(fig)



def chart_stages(rows: Sequence[tuple[str, float, float]]) -> bytes | None:
    """Horizontal p50/p95 bars, seconds per frame, one pair per stage and the total.

    Queue wait (not work) and stages under 0.5% of the total's p95 are left out of the
    bars; the page lists them.
    """
    total = next((r[2] for r in rows if r[0] == "total"), max((r[2] for r in rows), default=0.0))
    rows = [r for r in rows if r[0] != "queue wait" and (r[2] >= 0.005 * total or r[0] == "total")]
    if not rows:
        return None
    fig = _figure(11, 0.42 * len(rows) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    p50 = np.array([r[1] for r in rows])
    p95 = np.array([r[2] for r in rows])
    ax.barh(y + 0.18, p50, height=0.36, color=_COLORS[0], label="p50 (median)")
    ax.barh(y - 0.18, p95, height=0.36, color=_COLORS[1], label="p95")
    top = float(max(p95.max(), p50.max(), 1e-9))
    for yy, a, b in zip(y, p50, p95):
        ax.text(a + top * 0.01, yy + 0.18, seconds_text(a), va="center", fontsize=7.5)
        ax.text(b + top * 0.01, yy - 0.18, seconds_text(b), va="center", fontsize=7.5)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_xlim(0, top * 1.15)
    if rows[-1][0] == "total" and len(rows) > 1:
        ax.axhline(0.5, color="#9aa4b1", linewidth=0.8)
    ax.set_xlabel("seconds per frame")
    ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2)
    _style(ax)
    return _png(fig)


def seconds_text(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1000:.1f} ms" if s >= 1e-3 else f"{s * 1000:.2g} ms"



def chart_losses(curves: dict[str, tuple[list[np.ndarray], int]], examples: int = 5) -> bytes | None:
    """One panel per loss term: per group of frames optimised for the same number of steps, the
    median curve of the group (bold, labelled with the group's size and steps), and a few frames' curves.

    Frames of different lengths (the first frame of a shot runs every step; warm-started
    frames of a temporal chain fewer) are never mixed into one median.
    """
    from matplotlib.ticker import MaxNLocator

    if not curves:
        return None
    terms = [t for t in ("total", "content", "style", "tv") if t in curves]
    fig = _figure(11, 2.8 if len(terms) <= 2 else 5.2)
    cols = 2 if len(terms) > 1 else 1
    rows = math.ceil(len(terms) / cols)
    for k, term in enumerate(terms):
        ax = fig.add_subplot(rows, cols, k + 1)
        series, total = curves[term]
        pick = np.linspace(0, len(series) - 1, min(examples, len(series))).round().astype(int)
        for i in sorted(set(pick.tolist())):
            ax.plot(np.arange(len(series[i])), series[i], color="#9aa4b1", linewidth=0.8, alpha=0.8)
        groups = median_curves(series)
        longest = max(steps for steps, _, _ in groups)
        for g, (steps, count, median) in enumerate(groups[:3]):
            label = f"median of {count} frame{'s' if count != 1 else ''} with {steps} steps"
            if len(groups) > 1:
                label += " (cold start)" if steps == longest else " (warm-started)"
            ax.plot(np.arange(steps), median, color=_COLORS[(k + g) % len(_COLORS)], linewidth=2.2,
                    linestyle="-" if g == 0 else "--", label=label)
        if total > len(series):
            ax.plot([], [], " ", label=f"({len(series)} of {total} frames read)")
        finite = np.concatenate([c[np.isfinite(c)] for c in series]) if series else np.zeros(0)
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
        ax.set_title(f"{term} loss", loc="left", fontsize=10)
        ax.set_xlabel("optimiser step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7.5, frameon=False)
        _style(ax)
    return _png(fig)


def chart_ewarp(videos: Sequence[VideoSeries]) -> bytes | None:
    """E_warp per consecutive frame pair, one panel per video; seams dashed, scene cuts red."""
    videos = [v for v in videos if v.pairs]
    if not videos:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11, 2.4 * len(videos) + 0.4)
    for k, v in enumerate(videos):
        ax = fig.add_subplot(len(videos), 1, k + 1)
        x = v.first_frame + 1 + np.arange(len(v.pairs))  # pair (t-1, t) plotted at t
        y = np.array(v.pairs, dtype=float)
        ax.plot(x, y, marker="o", markersize=3, color=_COLORS[0], linewidth=1.4, label="E_warp of pair (t−1, t)")
        if v.e_warp is not None:
            ax.axhline(v.e_warp, color="#333333", linestyle=":", linewidth=1, label=f"mean {v.e_warp:.5f}")
        for i, s in enumerate(v.seams):
            ax.axvline(s, color=_COLORS[1], linestyle="--", linewidth=1.2, label="range seam" if i == 0 else None)
        for i, c in enumerate(v.cuts):
            ax.axvline(c, color="#c0392b", linewidth=1.6, label="scene cut (left out)" if i == 0 else None)
        ax.set_title(v.name, loc="left", fontsize=10)
        ax.set_ylabel("E_warp", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7.5, frameon=False, loc="upper left", ncols=4)
        _style(ax)
    fig.axes[-1].set_xlabel("input frame t")
    return _png(fig)


def chart_quality(quality: pa.Table) -> bytes | None:
    """Output against the grey baseline: PSNR, SSIM, ab error, colourfulness (means, with every image as a dot)."""
    if quality.num_rows == 0:
        return None
    panels = [
        ("PSNR (dB) — higher is closer", [("output", "psnr"), ("grey baseline", "baseline_psnr")]),
        ("SSIM — higher is closer", [("output", "ssim"), ("grey baseline", "baseline_ssim")]),
        ("ab error (Lab) — lower is better", [("output", "ab_error"), ("grey baseline", "baseline_ab_error")]),
        ("colourfulness", [("output", "colorfulness_pred"), ("grey baseline", "baseline_colorfulness"),
                           ("ground truth", "colorfulness_ref")]),
    ]
    colors = {"output": _COLORS[0], "grey baseline": "#9a9a9a", "ground truth": _COLORS[2]}
    fig = _figure(11, 3.0)
    rng = np.random.default_rng(0)
    for k, (title, bars) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ticks = []
        for i, (label, col) in enumerate(bars):
            values = np.array([v for v in quality[col].to_pylist() if v is not None], dtype=float)
            values = values[np.isfinite(values)]
            mean = float(values.mean()) if values.size else 0.0
            ax.bar(i, mean, color=colors[label], width=0.7)
            if values.size:
                ax.scatter(i + rng.uniform(-0.18, 0.18, values.size), values, s=9, color="#222222", zorder=3,
                           alpha=0.7)
            ticks.append(f"{label}\n{mean:.3g}" if values.size else f"{label}\n—")
        ax.set_xticks(range(len(bars)), ticks, fontsize=7.5)
        ax.set_title(title, loc="left", fontsize=8.5)
        ax.tick_params(labelsize=7.5)
        _style(ax)
    return _png(fig)




def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    c = np.cumsum(np.insert(values.astype(np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def chart_training(metrics: pa.Table) -> bytes | None:
    """A training run's loss per optimiser step (thin: each step; bold: running mean), its other loss
    terms when it has them, with the learning rate on a second axis; and samples/s per worker."""
    if metrics.num_rows == 0:
        return None
    steps = np.asarray(metrics["step"].to_pylist(), dtype=np.float64)
    terms = [t for t in ("loss", "classification", "regression", "content", "style", "tv", "temporal")
             if t in metrics.column_names and any(v is not None for v in metrics[t].to_pylist())]
    fig = _figure(11, 3.2)
    ax = fig.add_subplot(1, 2, 1)
    window = max(1, len(steps) // 20)
    for k, term in enumerate(terms):
        values = np.asarray([np.nan if v is None else v for v in metrics[term].to_pylist()], dtype=np.float64)
        color = _COLORS[k % len(_COLORS)]
        if term == "loss":
            ax.plot(steps, values, color="#9aa4b1", linewidth=0.8)
        ax.plot(steps, _running_mean(np.nan_to_num(values), window), color=color, linewidth=2.2 if term == "loss"
                else 1.2, label=f"{term} (mean of {window} steps)" if window > 1 else term)
    ax.set_title("training loss", loc="left", fontsize=10)
    ax.set_xlabel("optimiser step", fontsize=8)
    ax.tick_params(labelsize=8)
    lr_ax = ax.twinx()
    lr_ax.plot(steps, metrics["lr"].to_pylist(), color="#b8466b", linewidth=0.9, linestyle=":", label="learning rate")
    lr_ax.set_ylabel("learning rate", fontsize=8, color="#b8466b")
    lr_ax.tick_params(labelsize=7, colors="#b8466b")
    handles = ax.get_legend_handles_labels()
    more = lr_ax.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7.5, frameon=False)
    _style(ax)
    ax = fig.add_subplot(1, 2, 2)
    by_worker = metrics["samples_per_s_by_worker"].to_pylist()
    workers = max((len(r or []) for r in by_worker), default=0)
    for w in range(workers):
        rate = np.asarray([r[w] if r and len(r) > w else np.nan for r in by_worker], dtype=np.float64)
        ax.plot(steps, _running_mean(np.nan_to_num(rate), window), color=_COLORS[w % len(_COLORS)],
                linewidth=1.2, label=f"worker {w}")
    ax.plot(steps, _running_mean(np.asarray(metrics["samples_per_s"].to_pylist(), dtype=np.float64), window),
            color="#1d232b", linewidth=2.0, label="all workers")
    ax.set_title("samples per second", loc="left", fontsize=10)
    ax.set_xlabel("optimiser step", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7.5, frameon=False)
    _style(ax)
    return _png(fig)
