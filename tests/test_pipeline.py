"""The frame pipeline on its own: one call path for stills, per-frame video and temporal chains."""

from __future__ import annotations

import pytest
import torch

from colorstyle_core import devices
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig, StylizeStep
from colorstyle_core.resample import longer_side_size
from colorstyle_core.style.gatys import StyleConfig, Stylizer
from colorstyle_core.temporal import TemporalSettings
from colorstyle_core.timing import Stage
from tests.conftest import load_rgb


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer.from_weights("eccv16", device="cpu", untrained_seed=0)


@pytest.fixture(scope="module")
def stylizer():
    return Stylizer.from_weights("vgg16", device="cpu", untrained_seed=0)


def test_longer_side_size_never_enlarges_unless_asked():
    assert longer_side_size((300, 200), 150) == (150, 100)
    assert longer_side_size((300, 200), 600) == (300, 200)
    assert longer_side_size((300, 200), 600, upscale=True) == (600, 400)
    assert longer_side_size((300, 200), 0) == (300, 200)


def test_stills_of_mixed_sizes_equal_one_by_one(shared, colorizer):
    pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep()), colorizer=colorizer)
    a = load_rgb(shared / "data" / "gray" / "coffee.jpg", 80)
    b = load_rgb(shared / "data" / "gray" / "lighthouse.jpg", 64)[:, :1]  # a gray (1-channel) image
    together = pipeline.process([a, b])
    alone = [pipeline.process([a])[0], pipeline.process([b])[0]]
    for t, s, x in zip(together, alone, (a, b)):
        assert t.image.shape == (1, 3, *x.shape[-2:])
        assert torch.equal(t.image, s.image)
        assert t.stages[Stage.COLORIZE] > 0 and t.colorized is None


def test_video_batch_without_temporal_is_the_still_path(shared, colorizer):
    pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep()), colorizer=colorizer)
    frames = torch.cat([load_rgb(shared / "data" / "gray" / f"{s}.jpg", 64)[..., :40, :60]
                        for s in ("coffee", "chelsea_cat", "farm_dog")])
    seq = pipeline.sequence().process([0, 1, 2], frames)
    assert all(torch.equal(r.image, s.image) for r, s in zip(seq, pipeline.process(frames)))


def test_output_size_policy(shared, colorizer, stylizer):
    style = load_rgb(shared / "data" / "style" / "color" / "great_wave_hokusai.jpg", 48)
    image = load_rgb(shared / "data" / "gray" / "coffee.jpg", 60)
    config = StyleConfig(steps=1)
    for keep, size, expected in ((True, 40, image.shape[-2:]), (False, 40, longer_side_size(image.shape[-2:], 40)),
                                 (False, 90, longer_side_size(image.shape[-2:], 90, upscale=True))):
        step = StylizeStep(("wave",), config, "vgg16", size=size, keep_input_size=keep)
        pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep(), stylize=step), colorizer, stylizer, [style])
        result = pipeline.process([image])[0]
        assert tuple(result.image.shape[-2:]) == tuple(expected), (keep, size)
        assert result.colorized is not None and result.colorized.shape[-2:] == image.shape[-2:]
        assert len(result.curves["total"]) == 1 and result.stages[Stage.STYLIZE] > 0


def test_temporal_sequence_carries_state_across_calls(shared, colorizer):
    config = PipelineConfig(colorize=ColorizeStep(temporal=TemporalSettings(strength=0.8)))
    pipeline = FramePipeline(config, colorizer=colorizer)
    base = load_rgb(shared / "data" / "gray" / "coffee.jpg", 96)[..., :64, :96]
    frames = torch.cat([torch.roll(base, shifts=k, dims=-1) for k in range(4)])
    one_call = pipeline.sequence().process(list(range(4)), frames)
    seq = pipeline.sequence()
    two_calls = seq.process([0, 1], frames[:2]) + seq.process([2, 3], frames[2:])
    assert [r.info.reset for r in one_call] == [True, False, False, False]
    assert all(torch.equal(a.image, b.image) for a, b in zip(one_call, two_calls))


def test_a_step_without_its_model_is_refused(colorizer):
    with pytest.raises(ValueError, match="needs its model"):
        FramePipeline(PipelineConfig(colorize=ColorizeStep()))
    with pytest.raises(ValueError, match="needs its model"):
        FramePipeline(PipelineConfig(), colorizer=colorizer)


@pytest.mark.parametrize("gamut", ["preserve-l", "clip"])
def test_compiled_colour_maths_give_the_eager_output(shared, gamut):
    """``execution.compile_colour``: the same frames, eager and through torch.compile."""
    col = Colorizer.from_weights("eccv16", untrained_seed=0, device="cpu", gamut=gamut)
    frames = torch.cat([load_rgb(shared / "data" / "gray" / "coffee.jpg", 96)] * 2)
    eager = col(frames)
    col.compile_colour_math(True)
    fast = col(frames)
    assert (fast - eager).abs().max() < 1e-5  # float rounding (measured bit-identical on 1080p frames)


def test_a_failing_compile_falls_back_to_eager(shared, monkeypatch, caplog):
    def broken(fn, **options):
        def fail(*args):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    col = Colorizer.from_weights("eccv16", untrained_seed=0, device="cpu")
    frames = load_rgb(shared / "data" / "gray" / "coffee.jpg", 64)
    eager = col(frames)
    col.compile_colour_math(True)
    assert torch.equal(col(frames), eager) and torch.equal(col(frames), eager)
    warned = [r.args[0] for r in caplog.records if "running it eagerly" in r.message]
    assert {"rgb_to_l", "join_to_rgb"} <= set(warned) and len(warned) == len(set(warned))  # once per function


def test_an_input_error_under_compile_propagates_and_keeps_compiling(monkeypatch):
    """An error eager raises too is the inputs' error: it surfaces and compilation stays on."""
    calls = []

    def counting(fn, **options):
        def run(*args):
            calls.append(args)
            return fn(*args)
        return run

    monkeypatch.setattr(torch, "compile", counting)
    double = devices.compiled(lambda x: 2 * x * torch.ones(3), enabled=True)
    with pytest.raises(RuntimeError):
        double(torch.ones(4))  # (4,) * (3,): a shape error, eager and compiled alike
    assert torch.equal(double(torch.ones(3)), 2 * torch.ones(3))
    assert len(calls) == 2  # the second call still went through the compiled function
