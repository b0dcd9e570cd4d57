"""DDColor: the published layouts, parity with the authors' network and pipeline, the loader's key
adapter, generated weights that behave, and DDColor everywhere a colorizer goes."""

from __future__ import annotations

import hashlib
import json
import textwrap

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorstyle_core import color, loader
from colorstyle_core.catalog import build, generated_state_dict, get_spec, layout
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.hints import ColorHints
from colorstyle_core.models.ddcolor import SpectralConv2d
from colorstyle_core.pipeline import FramePipeline
from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig
from colorstyle_core.synthetic import spectral_vectors
from jobs.cli import main
from jobs.manifest import ColorizeSpec, parse_manifest
from jobs.manifest_base import ManifestError
from tests.conftest import TEST_DATA

LAYOUT_FILES = {"ddcolor_paper_tiny": "ddcolor_layout_convnext_t.json",
                "ddcolor_paper": "ddcolor_layout_convnext_l.json"}


@pytest.fixture(scope="module")
def tiny() -> Colorizer:
    return Colorizer.from_weights("ddcolor_paper_tiny", untrained_seed=0, device="cpu", gamut="clip")


# ---- architecture ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LAYOUT_FILES))
def test_layout_equals_the_published_checkpoints(name, capsys):
    want = json.loads((TEST_DATA / LAYOUT_FILES[name]).read_text())
    assert len(want) == {"ddcolor_paper_tiny": 440, "ddcolor_paper": 602}[name]
    assert [[k, s, d] for k, s, d in layout(name)] == want
    assert main(["models", "layout", name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == want


def test_large_weight_sets_share_the_large_architecture():
    assert layout("ddcolor_modelscope") == layout("ddcolor_artistic") == layout("ddcolor_paper")


def test_networks_match_the_authors_outputs():
    """Golden outputs made once with the authors' ``ddcolor/model.py`` (piddnad/DDColor @ 2adb63f) on
    ``generated_state_dict(name, seed=7)`` and a random gray input; our modules must reproduce them."""
    golden = torch.load(TEST_DATA / "golden_ddcolor.pt", weights_only=True)
    gray = golden["gray"].expand(-1, 3, -1, -1)
    for name in ("ddcolor_paper_tiny", "ddcolor_paper"):
        net = build(name).eval()
        net.load_state_dict(generated_state_dict(name, seed=7), strict=True)
        with torch.inference_mode():
            torch.testing.assert_close(net(gray), golden[name], atol=2e-3, rtol=1e-4)


def test_spectral_conv_equals_torch_spectral_norm_in_eval():
    gen = torch.Generator().manual_seed(0)
    ours = SpectralConv2d(6, 5, kernel_size=3, padding=1, bias=True)
    ref = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 5, 3, padding=1)).eval()
    state = {"bias": torch.randn(5, generator=gen), "weight_orig": torch.randn(5, 6, 3, 3, generator=gen),
             "weight_u": torch.randn(5, generator=gen), "weight_v": torch.randn(54, generator=gen)}
    ours.load_state_dict(state, strict=True)
    ref.load_state_dict(state, strict=True)
    x = torch.randn(2, 6, 8, 8, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_generated_spectral_vectors_are_the_leading_singular_pair():
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(1))
    u, v = spectral_vectors(w, torch.Generator().manual_seed(2))
    sigma = torch.dot(u, w.reshape(64, -1) @ v)
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(w.reshape(64, -1), ord=2), rtol=1e-3, atol=0)


def test_generated_weights_give_finite_ab_of_realistic_spread(shared):
    """Random u and v would make sigma arbitrary and the output explode (|ab| ~ 1e9); ours must not."""
    net = build("ddcolor_paper_tiny").eval()
    net.load_state_dict(generated_state_dict("ddcolor_paper_tiny", seed=0), strict=True)
    bgr = cv2.imread(str(shared / "data" / "gray" / "lighthouse.jpg"))
    gray = torch.from_numpy(cv2.resize(bgr, (512, 512))).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        ab = net(gray)
    assert torch.isfinite(ab).all()
    assert 5.0 < ab.abs().mean().item() < 60.0
    assert ab[0].flatten(1).std(dim=1).min().item() > 1.0  # colours vary across the image


# ---- the authors' pipeline --------------------------------------------------------------------------


def authors_pipeline(net: torch.nn.Module, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The authors' inference pipeline step by step (``ddcolor/pipeline.py``): OpenCV float Lab L of the
    original, a bilinear 512 x 512 resize, its L as gray RGB, the network, legacy nearest upsampling of
    ab, OpenCV Lab -> BGR, x255 and round. Returns (RGB uint8, network ab (2, 512, 512))."""
    img = (bgr / 255.0).astype(np.float32)
    orig_l = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)[:, :, :1]
    small_l = cv2.cvtColor(cv2.resize(img, (512, 512)), cv2.COLOR_BGR2Lab)[:, :, :1]
    gray = cv2.cvtColor(np.concatenate((small_l, 0 * small_l, 0 * small_l), axis=-1), cv2.COLOR_LAB2RGB)
    with torch.inference_mode():
        ab = net(torch.from_numpy(gray.transpose(2, 0, 1))[None].float())
    ab_full = F.interpolate(ab, size=bgr.shape[:2])[0].numpy().transpose(1, 2, 0)
    out = cv2.cvtColor(np.concatenate((orig_l, ab_full), axis=-1), cv2.COLOR_LAB2BGR)
    return (out * 255.0).round().astype(np.uint8)[:, :, ::-1], ab[0].numpy()


def test_clip_cli_reproduces_the_authors_pipeline(shared, generated_weights, tmp_path, tiny):
    """``colorstyle colorize --gamut clip --save-ab`` on a photo against the authors' steps on the same weights."""
    weights, sha = generated_weights.get("ddcolor_paper_tiny")
    src = shared / "data" / "color" / "farm_dog.jpg"
    out, ab_path = tmp_path / "out.png", tmp_path / "ab.npy"
    assert main(["colorize", str(src), str(out), "--model", "ddcolor_paper_tiny", "--weights", str(weights),
                 "--weights-sha256", sha, "--gamut", "clip", "--save-ab", str(ab_path), "--device", "cpu"]) == 0
    want_rgb, want_ab = authors_pipeline(tiny.net, cv2.imread(str(src)))
    have = cv2.imread(str(out))[:, :, ::-1]
    diff = np.abs(have.astype(int) - want_rgb.astype(int))
    assert diff.mean() <= 0.05 and np.percentile(diff, 99) <= 1, (diff.mean(), diff.max())
    ab = np.load(ab_path)
    assert ab.shape == (2, 512, 512) and ab.dtype == np.float32
    assert np.abs(ab - want_ab).mean() <= 1e-3


def test_default_keeps_l_and_upsamples_ab_bilinearly(shared, tiny):
    col = Colorizer(tiny.net, tiny.entry, tiny.provenance)  # same network, gamut preserve-l
    col.keep_network_ab = tiny.keep_network_ab = True
    rgb = torch.from_numpy(cv2.imread(str(shared / "data" / "gray" / "coffee.jpg"))[:, :, ::-1].copy())
    image = rgb.permute(2, 0, 1)[None].float() / 255
    lightness, ab = col.predict_ab(image)
    assert (color.rgb_to_lab(col.compose(lightness, ab))[:, :1] - color.rgb_to_l(image)).abs().max() < 0.05
    torch.testing.assert_close(ab, F.interpolate(col.network_ab, size=(400, 600), mode="bilinear"))
    _, ab_clip = tiny.predict_ab(image)  # the authors' nearest
    torch.testing.assert_close(ab_clip, F.interpolate(tiny.network_ab, size=(400, 600)))
    torch.testing.assert_close(tiny.network_ab, col.network_ab)  # same network input in both modes


def test_large_images_in_bands_equal_the_whole_image(shared, tiny):
    image = torch.from_numpy(cv2.imread(str(shared / "data" / "gray" / "lighthouse.jpg"))[:, :, ::-1].copy())
    image = image.permute(2, 0, 1)[None].contiguous()
    pipe = FramePipeline(PipelineConfig(colorize=ColorizeStep("ddcolor_paper_tiny", "clip")), colorizer=tiny)
    whole = pipe.process([image.float() / 255])[0].image
    banded = pipe.process_large(image, band_rows=100).image
    # compared before the whole image is rounded to 8 bits: rounding's half level plus float32's disagreement
    # between the two summation orders (far below 0.05 level), not a share of pixels that holds on one CPU
    assert (whole.double() * 255 - banded.double()).abs().max() <= 0.5 + 0.05


# ---- weights ------------------------------------------------------------------------------------------


def test_key_adapter_reads_the_older_basicsr_files(tmp_path):
    """``DDColor-models/*.pth``: the state_dict under 'params', plus the removed classifier head."""
    state = generated_state_dict("ddcolor_paper_tiny", seed=2)
    nested = {"params": {**state, "encoder.arch.head_cls.weight": torch.zeros(4, 768),
                         "encoder.arch.head_cls.bias": torch.zeros(4)}}
    path = tmp_path / "ddcolor_paper_tiny.pth"
    torch.save(nested, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    sd, _ = loader.load_verified_state_dict(get_spec("ddcolor_paper_tiny"), loader.WeightsSource(str(path), sha))
    assert sd.keys() == state.keys() and all(torch.equal(sd[k], state[k]) for k in state)

    nested["params"]["encoder.arch.extra"] = torch.zeros(1)  # anything else still fails, by name
    torch.save(nested, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(loader.WeightsLayoutError, match="encoder.arch.extra"):
        Colorizer.from_weights("ddcolor_paper_tiny", loader.WeightsSource(str(path), sha), device="cpu")


def test_records_name_their_published_files():
    for name in ("ddcolor_paper_tiny", "ddcolor_paper", "ddcolor_modelscope", "ddcolor_artistic"):
        spec = get_spec(name)
        assert spec.kind == "colorizer" and spec.adapter == "ddcolor" and len(spec.sha256) == 64
        assert spec.url.startswith("https://huggingface.co/piddnad/") and "Apache-2.0" in spec.license
    files = [spec.filename for entry in COLORIZERS for spec in entry.weight_specs]
    assert len(set(files)) == len(files)  # no two share a cache file
    assert get_spec("ddcolor_paper_tiny").preprocess.size == "tiny"
    assert {get_spec(n).preprocess.size for n in ("ddcolor_paper", "ddcolor_modelscope", "ddcolor_artistic")} == {
        "large"}


def test_weights_fetch_stages_a_verified_file(generated_weights, tmp_path, capsys):
    weights, sha = generated_weights.get("ddcolor_paper_tiny")
    assert main(["weights", "fetch", "ddcolor_paper_tiny", "--from", str(weights), "--sha256", sha,
                 "--to", str(tmp_path / "cache")]) == 0
    staged = tmp_path / "cache" / "ddcolor_paper_tiny-8a1277bc.bin"
    assert capsys.readouterr().out.strip() == str(staged)
    assert hashlib.sha256(staged.read_bytes()).hexdigest() == sha


# ---- everywhere a colorizer goes ------------------------------------------------------------------------


def test_manifest_models_are_the_registry_colorizers():
    assert set(ColorizeSpec.model_fields["model"].annotation.__args__) == set(COLORIZERS.names)


def test_hints_are_refused_for_ddcolor(tmp_path, tiny):
    with pytest.raises(ManifestError, match="ddcolor_paper_tiny takes no colour hints"):
        parse_manifest(textwrap.dedent(f"""
            inputs: [{{uri: {tmp_path}/in}}]
            output: {{prefix: {tmp_path}/out}}
            pipeline: {{colorize: {{model: ddcolor_paper_tiny, hints: {tmp_path}/hints}}}}
        """), "dd.yaml")
    with pytest.raises(ValueError, match="takes no colour hints"):
        tiny.predict_ab(torch.rand(1, 1, 64, 64), [ColorHints(points=((5, 5, 20.0, 20.0),))])


def test_job_with_ddcolor_and_temporal_colour_on_a_video(ray_local, shared, tmp_path):
    """Loaded once per actor, batched, through the temporal colour chain across a scene cut and a seam."""
    import pyarrow.parquet as pq

    from jobs.driver import EXIT_OK, RunOptions, run_job
    from tests.media import decoded_frames

    manifest = parse_manifest(textwrap.dedent(f"""
        inputs:
          - uri: {shared}/data/video/dev_kenburns_gray.mp4
            frames: {{start: 31, end: 39}}
        output: {{prefix: {tmp_path}/out}}
        pipeline:
          colorize:
            model: ddcolor_paper_tiny
            temporal: {{enabled: true, overlap: 2}}
          untrained_weights: true
        execution: {{actors: 2, frames_per_range: 4, batch_size: 4}}
        metrics: {{video_consistency: true}}
    """), "dd.yaml")
    report = run_job(manifest, RunOptions(progress=False))
    assert report.exit_code == EXIT_OK, report.failures
    frames = pq.read_table(report.written["frames"]).to_pylist()
    assert sorted(r["frame_index"] for r in frames) == list(range(31, 39))  # ranges 31-34 and 35-38
    assert sorted(r["frame_index"] for r in frames if r["chain_reset"]) == [31, 36]  # start and the cut
    assert all("ddcolor_paper_tiny" in r["weights"] and "UNTRAINED" in r["weights"] for r in frames)
    assert np.mean([r["perframe_diff"] for r in frames]) > 0  # the chain changed the per-frame colours
    video = pq.read_table(report.written["videos"]).to_pylist()[0]
    assert video["scene_cuts"] == [36] and np.isfinite(video["e_warp"])
    src = decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")[31:39]
    out = decoded_frames(tmp_path / "out" / "dev_kenburns_gray.mp4")
    assert len(out) == 8
    for a, b in zip(src, out):
        la = color.rgb_to_l(torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255)
        lb = color.rgb_to_l(torch.from_numpy(b.copy()).permute(2, 0, 1)[None].float() / 255)
        assert (la - lb).abs().mean() < 1.0  # L kept (up to H.264)
