"""Gatys stylizer: losses, per-image optimisation, colour preservation, blending, determinism."""

from __future__ import annotations

import pytest
import torch

from colorstyle_core import color
from colorstyle_core.style.gatys import StyleConfig, Stylizer, TemporalPrior, style_targets
from colorstyle_core.style.lbfgs import lbfgs_minimize
from colorstyle_core.style.losses import gram_matrix, total_variation
from jobs.cli import main
from tests.conftest import load_rgb

CONTENTS = ["coffee", "astronaut", "lighthouse", "farm_dog"]


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    torch.manual_seed(0)
    return Stylizer.from_weights("vgg19", untrained_seed=0, device="cpu")


@pytest.fixture(scope="module")
def stylizer64() -> Stylizer:
    """The same network in float64, where batched and single runs must agree exactly."""
    s = Stylizer.from_weights("vgg19", untrained_seed=0, device="cpu")
    s.extractor.double()
    return s


def _contents(shared, size=40, dtype=torch.float32):
    imgs = []
    for stem in CONTENTS:
        x = load_rgb(shared / "data" / "color" / f"{stem}.jpg", size=64)
        imgs.append(x[..., :size, :size])
    return torch.cat(imgs).to(dtype)


def _style(shared, stem="great_wave_hokusai", size=56, dtype=torch.float32):
    return load_rgb(shared / "data" / "style" / "color" / f"{stem}.jpg", size=size)[0].to(dtype)


def test_gram_matrix_is_per_image_and_size_normalised():
    f = torch.rand(3, 8, 5, 7)
    g = gram_matrix(f)
    assert g.shape == (3, 8, 8)
    torch.testing.assert_close(g[1], gram_matrix(f[1:2])[0])
    torch.testing.assert_close(g[0], f[0].reshape(8, -1) @ f[0].reshape(8, -1).T / (8 * 5 * 7))
    tiled = f.repeat(1, 1, 2, 2)  # same statistics, four times the pixels
    torch.testing.assert_close(gram_matrix(tiled), g)


def test_total_variation_is_zero_for_flat_images():
    assert total_variation(torch.ones(2, 3, 8, 8)).abs().max() == 0
    assert (total_variation(torch.rand(2, 3, 8, 8)) > 0).all()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_batch_of_four_gives_each_image_its_single_result(shared, stylizer64, optimizer):
    contents = _contents(shared, dtype=torch.float64)
    style = _style(shared, dtype=torch.float64)
    config = StyleConfig(steps=5, optimizer=optimizer)
    batch = stylizer64(contents, [style], config)
    for i in (0, 2):
        single = stylizer64(contents[i : i + 1], [style], config)
        torch.testing.assert_close(batch.images[i : i + 1], single.images, atol=1e-9, rtol=0)
        torch.testing.assert_close(batch.losses["total"][:, i : i + 1], single.losses["total"],
                                   atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_style_loss_falls_over_steps(shared, stylizer, optimizer):
    result = stylizer(_contents(shared)[:2], [_style(shared)], StyleConfig(steps=12, optimizer=optimizer))
    style = result.losses["style"]
    assert style.shape == (12, 2) and result.losses["total"].shape == (12, 2)
    assert (style[-1] < 0.5 * style[0]).all()
    assert result.images.shape == (2, 3, 40, 40)
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert torch.equal(result.losses["content"][0], torch.zeros(2))  # started from the content


def test_seed_makes_noise_init_deterministic(shared, stylizer):
    contents, style = _contents(shared)[:1], [_style(shared)]
    a = stylizer(contents, style, StyleConfig(steps=3, init="noise", seed=7))
    b = stylizer(contents, style, StyleConfig(steps=3, init="noise", seed=7))
    c = stylizer(contents, style, StyleConfig(steps=3, init="noise", seed=8))
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_colour_preservation_keeps_the_contents_chroma(shared, stylizer):
    contents, style = _contents(shared), [_style(shared)]
    kept = stylizer(contents, style, StyleConfig(steps=8, preserve_color=True))
    free = stylizer(contents, style, StyleConfig(steps=8))
    ab_in = color.rgb_to_lab(contents)[:, 1:]
    kept_err = (color.rgb_to_lab(kept.images)[:, 1:] - ab_in).abs().mean()
    free_err = (color.rgb_to_lab(free.images)[:, 1:] - ab_in).abs().mean()
    assert kept_err < 1.0 < free_err
    assert (color.rgb_to_l(kept.images) - color.rgb_to_l(contents)).abs().mean() > 0.1  # L was stylized


def test_blend_weights(shared, stylizer):
    contents = _contents(shared)[:1]
    wave, kandinsky = _style(shared), _style(shared, "composition_viii_kandinsky")
    only_wave = style_targets(stylizer.extractor, [wave], StyleConfig(), contents)
    blend_10 = style_targets(stylizer.extractor, [wave, kandinsky], StyleConfig(style_blend=(1.0, 0.0)), contents)
    half = style_targets(stylizer.extractor, [wave, kandinsky], StyleConfig(style_blend=(2.0, 2.0)), contents)
    only_k = style_targets(stylizer.extractor, [kandinsky], StyleConfig(), contents)
    for layer, g in only_wave.grams.items():
        torch.testing.assert_close(blend_10.grams[layer], g)
        torch.testing.assert_close(half.grams[layer], (g + only_k.grams[layer]) / 2)
    with pytest.raises(ValueError, match="2 blend weights for 1 style"):
        stylizer(contents, [wave], StyleConfig(steps=1, style_blend=(1.0, 1.0)))


def test_cached_targets_reused_for_same_size(shared, stylizer):
    contents, style = _contents(shared)[:2], [_style(shared)]
    config = StyleConfig(steps=2)
    t1 = stylizer.targets(style, config, contents, key=("wave",))
    assert stylizer.targets(style, config, contents[:1], key=("wave",)) is t1
    assert stylizer.targets(style, config, contents[..., :32, :32], key=("wave",)) is not t1
    direct = stylizer(contents, style, config)
    cached = stylizer(contents, t1, config)
    torch.testing.assert_close(direct.images, cached.images)


def test_warm_start_and_temporal_prior(shared, stylizer):
    contents, style = _contents(shared)[:1], [_style(shared)]
    first = stylizer(contents, style, StyleConfig(steps=6))
    prior = TemporalPrior(first.images, torch.ones(1, 1, 40, 40), weight=1e4)
    warm = stylizer(contents, style, StyleConfig(steps=2, init="image"), init_image=first.images, temporal=prior)
    assert warm.evaluations <= 2 and "temporal" in warm.losses
    assert warm.losses["temporal"][0, 0] == 0  # started exactly at the target
    assert (warm.images - first.images).abs().mean() < (contents - first.images).abs().mean()
    with pytest.raises(ValueError, match="init_image"):
        stylizer(contents, style, StyleConfig(steps=1, init="image"))


def test_config_validation():
    with pytest.raises(ValueError, match="conv9_9"):
        StyleConfig(content_layers=("conv9_9",))
    with pytest.raises(ValueError, match="optimizer"):
        StyleConfig(optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="style_weight"):
        StyleConfig(style_weight=-1)
    with pytest.raises(ValueError, match="style layer weights"):
        StyleConfig(style_layer_weights=(1.0,))


def test_vgg16_rejects_vgg19_only_layers(shared):
    s = Stylizer.from_weights("vgg16", untrained_seed=0, device="cpu")
    with pytest.raises(ValueError, match="relu5_4"):
        s(_contents(shared)[:1], [_style(shared)], StyleConfig(steps=1, style_layers=("relu5_4",)))


def test_batched_lbfgs_matches_torch_lbfgs_per_element():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 20, 20, generator=gen, dtype=torch.float64)
    a = a @ a.transpose(1, 2) / 20 + 0.1 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(3, 20, generator=gen, dtype=torch.float64)

    def f_one(x, i):
        return 0.5 * x @ a[i] @ x - b[i] @ x + torch.sin(3 * x).sum() + 0.1 * (x**4).sum()

    def f(x):
        return torch.stack([f_one(x[i], i) for i in range(x.shape[0])])

    x0 = torch.randn(3, 20, generator=gen, dtype=torch.float64)
    for steps in (1, 2, 7, 30):
        batched, _ = lbfgs_minimize(f, x0, steps, history_size=5)
        for i in range(3):
            p = x0[i].clone().requires_grad_(True)
            opt = torch.optim.LBFGS([p], lr=1, max_iter=steps, max_eval=2 * steps, history_size=5)

            def closure():
                opt.zero_grad()
                loss = f_one(p, i)
                loss.backward()
                return loss

            opt.step(closure)
            torch.testing.assert_close(batched[i], p.detach(), atol=1e-10, rtol=0)


def test_cli_stylize_two_styles_with_blend_and_loss_curve(shared, generated_weights, tmp_path):
    path, _ = generated_weights.get("vgg16")
    styles = ",".join(str(shared / "data" / "style" / "color" / f"{s}.jpg")
                      for s in ("great_wave_hokusai", "cafe_terrace_van_gogh"))
    out = tmp_path / "styled.jpg"
    rc = main(["stylize", str(shared / "data" / "color" / "coffee.jpg"), styles, str(out), "--arch", "vgg16",
               "--weights", str(path), "--size", "48", "--steps", "3", "--blend", "3,1", "--preserve-color",
               "--losses-out", str(tmp_path / "losses.csv")])
    assert rc == 0
    from PIL import Image

    assert Image.open(out).size == (48, 32)
    lines = (tmp_path / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,total,content,style,tv" and len(lines) == 4
