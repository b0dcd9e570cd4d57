"""The one-pass 8-bit join (colorstyle_core.lab8) against the float colour maths it replaces on CPU video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorstyle_core import color, lab8
from colorstyle_core.colorizer import Colorizer, colorize_rgb8
from colorstyle_core.imageio import frames_float, frames_rgb8
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig
from colorstyle_core.resample import resize_bilinear
from colorstyle_core.video import probe, read_frames

pytestmark = pytest.mark.skipif(not lab8.available(), reason="numba does not load here")


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer.from_weights("eccv16", device="cpu", untrained_seed=0)


def _frames(shared, name: str, n: int = 4) -> np.ndarray:
    path = str(shared / "data" / "video" / name)
    info = probe(path, path)
    return np.stack([rgb for _, rgb in read_frames(path, info, 0, n, path)])


def _float_join(rgb8: np.ndarray, ab: torch.Tensor) -> np.ndarray:
    """What LabJoin and the encoder's rounding do with float frames (the reference)."""
    x = frames_float(frames_rgb8(list(rgb8)))
    lab = torch.cat((color.rgb_to_l(x), resize_bilinear(ab, tuple(x.shape[-2:]))), dim=1)
    return color.to_uint8(color.lab_to_rgb(lab, "preserve-l")).permute(0, 2, 3, 1).numpy()


def _assert_close_levels(out: np.ndarray, ref: np.ndarray, share: float = 1e-4) -> None:
    diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
    assert out.shape == ref.shape and out.dtype == np.uint8
    assert diff.max() <= 1, "one level at most: float32 rounding in another order"
    assert (diff > 0).mean() <= share, f"{(diff > 0).mean():.2e} of the values differ"


@pytest.mark.parametrize("video", ["dev_kenburns_gray.mp4", "dev_kenburns_color.mp4"])
@pytest.mark.parametrize("gain", [1.0, 3.0])  # 3x ab: about half the pixels outside sRGB, projected
def test_join_equals_the_float_maths(shared, video, gain):
    rgb8 = _frames(shared, video)
    gen = torch.Generator().manual_seed(0)
    ab = (torch.randn(len(rgb8), 2, 8, 8, generator=gen) * 25 * gain).float()
    ab = torch.nn.functional.interpolate(ab, size=(56, 72), mode="bilinear")  # smooth, as a network's
    _assert_close_levels(lab8.join_to_rgb8(rgb8, ab.numpy(), threads=2), _float_join(rgb8, ab))


def test_join_on_every_colour_and_extreme_ab():
    levels = np.arange(0, 256, 5, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb8 = np.stack((r, g, b), axis=-1).reshape(1, len(levels) ** 2, len(levels), 3)
    ab = torch.tensor([[-110.0, 95.0], [60.0, -100.0]]).view(1, 2, 2, 1).expand(1, 2, 2, 2).contiguous()
    _assert_close_levels(lab8.join_to_rgb8(rgb8, ab.numpy(), threads=1), _float_join(rgb8, ab), share=1e-3)


def test_output_keeps_the_input_lightness(shared):
    rgb8 = _frames(shared, "dev_kenburns_gray.mp4", 2)
    ab = torch.full((2, 2, 4, 4), 90.0)  # far outside sRGB everywhere
    out = lab8.join_to_rgb8(rgb8, ab.numpy())
    l_in = color.rgb_to_l(frames_float(frames_rgb8(list(rgb8))))
    l_out = color.rgb_to_l(frames_float(frames_rgb8(list(out))))
    assert (l_out - l_in).abs().max() < 0.8  # 8-bit rounding of the output, nothing more


def test_levels_step_where_torch_rounds_up():
    steps = lab8._tables()[2]
    below = np.nextafter(steps, np.float32(0.0))
    x = torch.from_numpy(np.concatenate((steps, below))).repeat_interleave(16).view(1, 1, 1, -1)
    level = color.to_uint8(color.linear_to_srgb(x).clamp(0.0, 1.0)).view(-1, 16)[:, 0].long().numpy()
    k = np.arange(255)
    assert (level[:255] == k + 1).all() and (level[255:] == k).all()


def test_is_gray():
    frames = np.full((2, 4, 5, 3), 7, dtype=np.uint8)
    assert lab8.is_gray(frames)
    frames[1, 3, 4, 2] = 8
    assert not lab8.is_gray(frames)
    with pytest.raises(ValueError, match="uint8"):
        lab8.is_gray(frames.astype(np.float32))


def test_join_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 2, h, w\)"):
        lab8.join_to_rgb8(np.zeros((2, 4, 4, 3), np.uint8), np.zeros((1, 2, 2, 2), np.float32))


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_kernels_leave_torchs_thread_count_alone(threads):
    """numba's OpenMP layer is torch's: an actor given one CPU must keep one torch thread after a join."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        frames = np.zeros((2, 8, 8, 3), np.uint8)
        lab8.join_to_rgb8(frames, np.zeros((2, 2, 4, 4), np.float32), threads)
        lab8.is_gray(frames, threads)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("model", ["eccv16", "ddcolor_paper_tiny"])
def test_gray_network_input_is_the_three_channel_one(shared, model):
    recipe = Colorizer.from_weights(model, device="cpu", untrained_seed=0).entry.recipe
    gray = frames_float(frames_rgb8(list(_frames(shared, "dev_kenburns_gray.mp4", 2))))
    size = (256, 256)
    assert torch.equal(recipe.network_input_gray(gray[:, :1], size), recipe.network_input(gray, size))


@pytest.mark.parametrize("video", ["dev_kenburns_gray.mp4", "dev_kenburns_color.mp4"])
def test_pipeline_takes_8bit_frames_as_the_float_path(shared, colorizer, video):
    pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep()), colorizer=colorizer)
    frames = frames_rgb8(list(_frames(shared, video, 3)))
    fast = pipeline.process(frames)
    slow = pipeline.process(frames_float(frames))
    assert all(r.image.dtype == torch.uint8 for r in fast)
    for f, s in zip(fast, slow):
        _assert_close_levels(f.image.permute(0, 2, 3, 1).numpy(), color.to_uint8(s.image).permute(0, 2, 3, 1).numpy())


def test_authors_clip_and_gpu_take_the_float_path(shared):
    clip = Colorizer.from_weights("eccv16", device="cpu", gamut="clip", untrained_seed=0)
    frames = frames_rgb8(list(_frames(shared, "dev_kenburns_gray.mp4", 1)))
    assert colorize_rgb8(clip, frames) is None
    pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep(gamut="clip")), colorizer=clip)
    assert pipeline.process(frames)[0].image.dtype == torch.float32
