"""``colorstyle eval images``: figures that match an independent computation, grey baseline, diff maps."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from jobs.cli import main


def _independent(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and colourfulness written from their definitions (not through colorstyle)."""
    mse = np.mean((pred.astype(np.float64) - ref.astype(np.float64)) ** 2)
    psnr = 10 * np.log10(255.0**2 / mse)
    ssim = structural_similarity(pred, ref, channel_axis=-1, data_range=255)

    def cf(x):
        r, g, b = (x[..., i].astype(np.float64) for i in range(3))
        rg, yb = r - g, 0.5 * (r + g) - b
        return np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())

    return {"psnr": psnr, "ssim": ssim, "colorfulness_pred": cf(pred), "colorfulness_ref": cf(ref)}


@pytest.fixture
def folders(tmp_path, shared):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    (pred / "set").mkdir(parents=True)
    (gt / "set").mkdir(parents=True)
    for stem in ("coffee", "farm_dog"):
        src = np.asarray(Image.open(shared / "data" / "color" / f"{stem}.jpg").convert("RGB"))
        noisy = np.clip(src.astype(int) + np.random.default_rng(0).integers(-12, 13, src.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(pred / "set" / f"{stem}.png")
        shutil.copy(shared / "data" / "color" / f"{stem}.jpg", gt / "set" / f"{stem}.jpg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(pred / "orphan.png")
    return pred, gt


def test_eval_images_matches_independent_metrics_and_writes_baseline_and_diffs(folders, capsys):
    pred, gt = folders
    assert main(["eval", "images", str(pred), "--reference", str(gt), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["image"]: r for r in report["images"]}
    assert set(rows) == {"set/coffee", "set/farm_dog"}
    assert any("orphan" in p for p in report["summary"]["unmatched_or_failed"])
    for stem, row in rows.items():
        p = np.asarray(Image.open(pred / f"{stem}.png").convert("RGB"))
        r = np.asarray(Image.open(gt / f"{stem}.jpg").convert("RGB"))
        ref = _independent(p, r)
        assert row["psnr"] == pytest.approx(ref["psnr"], abs=0.01)
        assert row["ssim"] == pytest.approx(ref["ssim"], abs=0.001)
        assert row["colorfulness_pred"] == pytest.approx(ref["colorfulness_pred"], abs=0.1)
        assert row["colorfulness_ref"] == pytest.approx(ref["colorfulness_ref"], abs=0.1)
        assert row["baseline_colorfulness"] == pytest.approx(0.0, abs=1e-6)
        assert row["baseline_psnr"] < row["psnr"]  # the noisy copy is far closer than "no colour"
        for kind in ("abs", "clamped"):
            diff = np.asarray(Image.open(pred / "_colorstyle" / "eval" / "diffs" / f"{stem}.{kind}.png"))
            assert diff.shape == p.shape and diff.max() > 0
    base = report["summary"]["grey_baseline"]
    assert base["psnr"]["mean"] < report["summary"]["prediction"]["psnr"]["mean"]
    assert (pred / "_colorstyle" / "eval" / "quality.csv").read_text().count("\n") == 3


def test_eval_images_without_any_match_fails_clearly(folders, tmp_path, capsys):
    pred, _ = folders
    (tmp_path / "empty").mkdir()
    assert main(["eval", "images", str(pred), "--reference", str(tmp_path / "empty")]) == 2
    assert "no prediction" in capsys.readouterr().err
