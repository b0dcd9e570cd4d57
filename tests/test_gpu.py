"""CUDA-only checks (pytest marker ``gpu``; skipped cleanly without CUDA): mixed precision against
fp32 for the colorizer and the Gatys losses, and a job whose actor runs on the GPU.

Run them with the rest of the GPU check: ``python -m jobs.bench.gpu_check``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorstyle_core.colorizer import Colorizer
from colorstyle_core.style.gatys import StyleConfig, Stylizer, style_targets
from colorstyle_core.style.losses import content_loss, gram_matrix, style_loss
from tests.conftest import load_rgb

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

PHOTOS = ("coffee", "lighthouse", "chelsea_cat", "farm_dog")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("model", ["eccv16", "siggraph17"])
def test_mixed_precision_colorizer_stays_within_one_level_of_fp32(shared, model, precision):
    colorizer = Colorizer.from_weights(model, device="cuda", untrained_seed=0)
    images = [load_rgb(shared / "data" / "gray" / f"{p}.jpg").cuda() for p in PHOTOS]
    reference = [np.round(colorizer(x).cpu().numpy() * 255) for x in images]
    colorizer.precision = precision
    mixed = [np.round(colorizer(x).cpu().numpy() * 255) for x in images]
    for ref, out in zip(reference, mixed):
        assert np.abs(out - ref).mean() <= 1.0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_style_loss_within_one_percent(shared, precision):
    stylizer = Stylizer.from_weights("vgg19", device="cuda", untrained_seed=0)
    content = load_rgb(shared / "data" / "color" / "coffee.jpg", 512).cuda()
    style = load_rgb(shared / "data" / "style" / "color" / "great_wave_hokusai.jpg", 512).cuda()
    config = StyleConfig()
    image = (content * 0.7 + 0.3 * torch.rand_like(content)).clamp(0, 1)

    def losses() -> tuple[float, float]:
        targets = style_targets(stylizer.extractor, [style], config, content)
        feats = stylizer.extractor(image, [*config.content_layers, *config.style_layers])
        ref = stylizer.extractor(content, config.content_layers)
        s = sum(float(style_loss(gram_matrix(feats[l]), targets.grams[l])) for l in config.style_layers)
        c = sum(float(content_loss(feats[l], ref[l])) for l in config.content_layers)
        return s, c

    s32, c32 = losses()
    stylizer.extractor.precision = precision
    s16, c16 = losses()
    assert abs(s16 - s32) <= 0.01 * abs(s32) and abs(c16 - c32) <= 0.01 * abs(c32)


def test_a_job_runs_its_actor_on_the_gpu(shared, tmp_path, ray_session):
    import os
    import textwrap

    import ray

    from jobs.driver import RunOptions, run_job
    from jobs.manifest import parse_manifest

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray_session.release()  # the session's Ray has no GPUs: this test's sees the real one
    ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        manifest = parse_manifest(textwrap.dedent(f"""
            inputs: ["{shared / 'data' / 'video' / 'dev_kenburns_gray.mp4'}"]
            output: {{prefix: "{tmp_path}"}}
            pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
            execution: {{actors: 1, gpus_per_actor: 1, precision: bf16}}
        """), "gpu.yaml")
        report = run_job(manifest, RunOptions(progress=False))
    finally:
        ray.shutdown()
    assert report.exit_code == 0
    assert [a.device for a in report.actors] == ["cuda"]
