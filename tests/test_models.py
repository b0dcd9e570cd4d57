"""Architectures: checkpoint layouts key for key, parity with the authors' network code."""

from __future__ import annotations

import json

import pytest
import torch

from colorstyle_core.catalog import build, generated_state_dict, layout
from colorstyle_core.models import SIGGRAPH17Colorizer, VGGFeatures, layer_names, vgg_features_only
from jobs.cli import main
from tests.conftest import TEST_DATA

NAMES = ["eccv16", "siggraph17", "vgg16", "vgg19"]


@pytest.fixture(scope="module")
def published_layouts() -> dict:
    """Layouts of the published checkpoints, read from the authors' and torchvision's builders."""
    return json.loads((TEST_DATA / "layouts.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_layout_matches_published_checkpoint(name, published_layouts):
    assert [[k, s, d] for k, s, d in layout(name)] == published_layouts[name]


@pytest.mark.parametrize("name", NAMES)
def test_cli_prints_layout_as_json(name, published_layouts, capsys):
    assert main(["models", "layout", name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == published_layouts[name]


@pytest.mark.parametrize("name", ["eccv16", "siggraph17"])
def test_generated_weights_load_strictly(name):
    model = build(name)
    model.load_state_dict(generated_state_dict(name, seed=1), strict=True)
    again = generated_state_dict(name, seed=1)
    assert all(torch.equal(v, again[k]) for k, v in model.state_dict().items())  # seeded: reproducible


def test_colorizers_match_authors_network_outputs():
    """Golden outputs made once with the authors' ``colorizers/`` modules (richzhang/colorization
    @ 4f6009e) on ``generated_state_dict(name, seed=7)``; our modules must reproduce them."""
    golden = torch.load(TEST_DATA / "golden_colorizers.pt", weights_only=True)
    for name in ("eccv16", "siggraph17"):
        model = build(name).eval()
        model.load_state_dict(generated_state_dict(name, seed=7), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(model(golden["L"]), golden[name], atol=1e-4, rtol=1e-4)
            if isinstance(model, SIGGRAPH17Colorizer):
                out = model(golden["L"], golden["hint_ab"], golden["hint_mask"])
                torch.testing.assert_close(out, golden["siggraph17_hints"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_vgg_features_load_from_full_checkpoint_with_classifier_dropped(arch):
    full = generated_state_dict(arch, seed=0)
    assert any(k.startswith("classifier.") for k in full)
    features = vgg_features_only(full)
    assert features and all(k.startswith("features.") for k in features)
    extractor = VGGFeatures(arch)
    extractor.load_state_dict(features, strict=True)
    with pytest.raises(RuntimeError):
        extractor.load_state_dict(full, strict=True)  # the classifier keys must be filtered out


def test_vgg_key_filter_rejects_foreign_checkpoints():
    with pytest.raises(ValueError, match="model1.0.weight"):
        vgg_features_only(generated_state_dict("eccv16"))


def test_vgg_layer_names_follow_torchvision_indices():
    names = layer_names("vgg19")
    assert names[0] == "conv1_1" and names[1] == "relu1_1" and names[4] == "pool1"
    assert names.index("conv4_2") == 21 and names.index("relu5_4") == 35 and len(names) == 37
    names16 = layer_names("vgg16")
    assert names16.index("conv4_2") == 19 and names16[-1] == "pool5" and "relu3_4" not in names16


def test_vgg_returns_named_activations_and_stops_at_deepest(monkeypatch):
    extractor = VGGFeatures("vgg19")
    extractor.load_state_dict(vgg_features_only(generated_state_dict("vgg19")), strict=True)
    seen = []
    for i, module in enumerate(extractor.features):
        module.register_forward_hook(lambda m, inp, out, i=i: seen.append(i))
    x = torch.rand(2, 3, 32, 32)
    out = extractor(x, ["relu1_1", "conv2_1", "pool2"])
    assert set(out) == {"relu1_1", "conv2_1", "pool2"}
    assert out["relu1_1"].shape == (2, 64, 32, 32) and out["pool2"].shape == (2, 128, 8, 8)
    assert max(seen) == layer_names("vgg19").index("pool2")  # nothing deeper ran
    assert (out["relu1_1"] >= 0).all() and (out["conv2_1"] < 0).any()  # conv output is pre-ReLU
    assert not any(p.requires_grad for p in extractor.parameters())
    with pytest.raises(ValueError, match="relu3_4"):
        VGGFeatures("vgg16")(x, ["relu3_4"])
