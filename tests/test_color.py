"""Colour math: agreement with scikit-image (the authors' reference) and the L contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorstyle_core import color
from colorstyle_core.resample import resize_like_pil_bicubic
from tests.conftest import load_rgb


def _random_lab(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lab = torch.rand(1, 3, n, n, generator=g, dtype=torch.float64)
    return torch.cat((lab[:, :1] * 100, lab[:, 1:] * 220 - 110), dim=1)


def test_rgb_to_lab_matches_scikit_image():
    rgb = torch.rand(2, 3, 17, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = color.rgb_to_lab(rgb).permute(0, 2, 3, 1).numpy()
    ref = skcolor.rgb2lab(rgb.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    np.testing.assert_allclose(color.rgb_to_l(rgb)[:, 0].numpy(), ref[..., 0], atol=1e-9)


def test_gray_lightness_equals_rgb_lightness():
    gray = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(color.rgb_to_l(gray), color.rgb_to_l(gray.expand(-1, 3, -1, -1)))
    torch.testing.assert_close(color.l_to_gray(color.rgb_to_l(gray)), gray)


def test_clip_mode_matches_scikit_image_lab2rgb_even_out_of_gamut():
    lab = _random_lab(32, 1)
    with pytest.warns(UserWarning):  # skimage warns about negative Z values
        ref = skcolor.lab2rgb(lab[0].permute(1, 2, 0).numpy())
    ours = color.lab_to_rgb(lab, gamut="clip")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_preserve_l_keeps_lightness_for_any_ab():
    lab = _random_lab(40, 2).float()  # most of these colours are outside sRGB
    rgb = color.lab_to_rgb(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (color.rgb_to_l(rgb) - lab[:, :1]).abs().max() < 0.1
    # after 8-bit rounding, as written to a PNG
    rgb8 = color.to_uint8(rgb).float() / 255
    assert (color.rgb_to_l(rgb8) - lab[:, :1]).abs().max() < 0.5
    # clipping, by contrast, moves L a lot on these colours
    assert (color.rgb_to_l(color.lab_to_rgb(lab, gamut="clip")) - lab[:, :1]).abs().max() > 5


@pytest.mark.parametrize("lightness", [0.0, 100.0])
def test_preserve_l_at_black_and_white_gives_black_and_white(lightness):
    """L = 0 and L = 100 leave one point of the cube (rounding can make every breakpoint one-sided)."""
    g = torch.Generator().manual_seed(5)
    ab = (torch.rand(1, 2, 30, 30, generator=g) - 0.5) * 260
    lab = torch.cat((torch.full((1, 1, 30, 30), lightness), ab), dim=1)
    rgb = color.lab_to_rgb(lab)
    assert torch.isfinite(rgb).all()
    assert (rgb - lightness / 100).abs().max() < 1e-3

def test_preserve_l_leaves_in_gamut_colours_alone():
    rgb = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    lab = color.rgb_to_lab(rgb)
    torch.testing.assert_close(color.lab_to_rgb(lab), rgb, atol=2e-5, rtol=0)


def test_gamut_projection_is_the_nearest_colour_with_the_same_luminance():
    lab = _random_lab(12, 4)
    lin = color.project_to_gamut(lab)[0].permute(1, 2, 0).reshape(-1, 3)
    target = color._lab_to_linear_rgb(lab, clip_fz=True)[0].permute(1, 2, 0).reshape(-1, 3)
    w = torch.tensor(color._XYZ_FROM_RGB[1], dtype=torch.float64)
    y = color._f_inv((lab[0, 0].reshape(-1) + 16) / 116)
    assert (lin >= 0).all() and (lin <= 1).all()
    torch.testing.assert_close(lin @ w, y, atol=1e-9, rtol=0)  # same luminance, so same L
    # brute force: the closest point of a fine grid on the plane w.x = y inside the cube
    g = torch.linspace(0, 1, 201, dtype=torch.float64)
    r, gg = torch.meshgrid(g, g, indexing="ij")
    for i in range(0, lin.shape[0], 17):
        b = (y[i] - w[0] * r - w[1] * gg) / w[2]
        ok = (b >= 0) & (b <= 1)
        cand = torch.stack((r[ok], gg[ok], b[ok]), dim=1)
        best = (cand - target[i]).norm(dim=1).min()
        assert (lin[i] - target[i]).norm() <= best + 1e-9


def test_conversions_do_not_modify_inputs():
    rgb = torch.rand(1, 3, 8, 8)
    lab = color.rgb_to_lab(rgb)
    keep_rgb, keep_lab = rgb.clone(), lab.clone()
    color.lab_to_rgb(lab)
    color.project_to_gamut(lab)
    color.rgb_to_l(rgb)
    assert torch.equal(rgb, keep_rgb) and torch.equal(lab, keep_lab)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        color.rgb_to_lab(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="gamut"):
        color.lab_to_rgb(torch.rand(1, 3, 4, 4), gamut="squash")  # type: ignore[arg-type]


@pytest.mark.parametrize("stem", ["china_summer_palace", "berlin_cathedral", "chelsea_cat", "lighthouse"])
def test_resize_matches_pillow_bicubic(shared, stem):
    from PIL import Image

    path = shared / "data" / "color" / f"{stem}.jpg"
    ref = np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.BICUBIC)).astype(np.float32)
    ours = resize_like_pil_bicubic(load_rgb(path), (256, 256))[0].permute(1, 2, 0).numpy() * 255
    diff = np.abs(ours - ref)
    # Pillow accumulates in 22-bit fixed point, torch in float: ties round apart on a
    # few pixels (lighthouse, an exact 3:1 reduction, is the worst: mean 0.09 level).
    assert diff.max() <= 2.0
    assert (diff > 1).mean() < 1e-4
    assert diff.mean() < 0.15
