"""The registries of colorizers and stylization methods: every list of names, check and dispatch reads them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest
import torch
from conftest import job_manifest

from colorstyle_core.catalog import REGISTRY, build, generated_state_dict
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig
from colorstyle_core.registry import Registry
from colorstyle_core.style.methods import METHODS
from jobs.cli import build_parser
from jobs.manifest import ColorizeSpec, StylizeSpec
from jobs.manifest_base import ManifestError
from jobs.train.manifest import FINETUNABLE


@dataclass(frozen=True)
class _Entry:
    name: str


def test_a_registry_refuses_two_entries_of_one_name_and_names_the_known_ones():
    with pytest.raises(ValueError, match="two colorizer entries are named 'a'"):
        Registry("colorizer", [_Entry("a"), _Entry("a")])
    reg = Registry("stylization method", [_Entry("a"), _Entry("b")])
    assert reg.names == ("a", "b") and "a" in reg and len(reg) == 2 and reg.get("b").name == "b"
    with pytest.raises(ValueError, match="unknown stylization method 'c'; choose one of a, b"):
        reg.get("c")


def test_every_place_that_lists_colorizers_and_methods_reads_the_registries():
    assert set(ColorizeSpec.model_fields["model"].annotation.__args__) == set(COLORIZERS.names)
    assert set(StylizeSpec.model_fields["method"].annotation.__args__) == set(METHODS.names)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    colorize = {a.dest: a for a in sub.choices["colorize"]._actions}
    stylize = {a.dest: a for a in sub.choices["stylize"]._actions}
    assert tuple(colorize["model"].choices) == COLORIZERS.names
    assert tuple(stylize["method"].choices) == METHODS.names
    assert all(s.name in REGISTRY for e in COLORIZERS for s in e.weight_specs)
    assert all(s.name in REGISTRY for m in METHODS for s in m.weight_specs)
    assert set(FINETUNABLE) == {e.name for e in COLORIZERS if e.finetuning is not None}


@pytest.mark.parametrize("name", [e.name for e in COLORIZERS if "ddcolor" not in e.name or e.name.endswith("tiny")])
def test_every_colorizer_entry_builds_from_its_generated_weights_and_colorizes_in_each_gamut_a_job_takes(name):
    entry = COLORIZERS.get(name)
    for weights_name, network in entry.networks.items():  # every network of the entry, strictly
        net = network()
        net.load_state_dict(generated_state_dict(weights_name, 1), strict=True)
        assert type(net) is type(build(weights_name))
    x = torch.rand(1, 1, 40, 56)
    reference = torch.rand(48, 64, 3).numpy() if entry.takes_reference else None
    gamuts = 0
    for gamut in ("preserve-l", "clip"):
        step = ColorizeStep(name, gamut, reference="ref" if entry.takes_reference else None,
                            image_size=(64, 96) if "image_size" in entry.options else None)
        try:
            entry.check_job_step(step, hints=False, weights_sha256=None)
        except ValueError:  # deepexemplar's clip (the authors' output geometry) is the command's only
            continue
        gamuts += 1
        pipeline = FramePipeline.build(PipelineConfig(colorize=step), untrained_seed=1, reference=reference)
        out = pipeline.process([x])[0].image
        assert out.shape == (1, 3, 40, 56) and torch.isfinite(out).all()
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
        assert pipeline.untrained and pipeline.provenances[0].name == name
    assert gamuts == (1 if entry.takes_reference else 2)


def test_every_colorizer_is_validated_offline_and_only_one_network_colorizers_build_as_colorizer(tmp_path, capsys):
    from colorstyle_core.colorizer import Colorizer
    from jobs.cli import main

    for entry in COLORIZERS:
        job = tmp_path / f"{entry.name}.yaml"
        extra = ", reference: r.jpg, weights: w/" if entry.takes_reference else ""
        colorize = f"{{model: {entry.name}{extra}}}"
        job.write_text(f"inputs: [a/]\noutput: {{prefix: o/}}\npipeline: {{colorize: {colorize}}}\n")
        assert main(["validate", str(job), "--no-storage"]) == 0, entry.name
        err = capsys.readouterr().err
        assert all(spec.filename in err for spec in entry.weight_specs), err  # its files, from its own entry
    with pytest.raises(ValueError, match="deepexemplar is not a one-network colorizer"):
        Colorizer.from_weights("deepexemplar", untrained_seed=0)


def test_each_method_refuses_the_settings_of_the_others_and_says_whose_they_are():
    base = "inputs: [a.jpg]\noutput: {prefix: out}\npipeline:\n  stylize:\n"
    owned = {m.name: set(m.options) for m in METHODS}
    for method in METHODS:
        others = sorted(set().union(*(o for n, o in owned.items() if n != method.name)) - owned[method.name])
        for key in others:
            value = "0.5" if key in ("lr", "style_scale") else "{uri: m-12345678.pth}" if key in ("model", "weights") \
                else "vgg16" if key == "arch" else "avg" if key == "pooling" else "adam" if key == "optimizer" \
                else "noise" if key == "init" else "[relu1_1]" if key.endswith("layers") else "3"
            styles = "    styles: [p.jpg]\n" if method.takes_styles else "    model: {uri: m-12345678.pth}\n"
            text = base + f"    method: {method.name}\n" + styles + f"    {key}: {value}\n"
            with pytest.raises(ManifestError, match=f"{key}: settings of method .*, not of {method.name}"):
                job_manifest(text)
