"""Fine-tuning a colorizer on an archive's own colour material, with Ray Train.

First the paper's equations (soft encoding, class rebalancing, the weighted cross-entropy;
SIGGRAPH17's targets and simulated hints) against an independent, loop-by-loop numpy
implementation. Then real runs: 2 CPU workers (gloo), generated starting weights,
colour photos with one grey photo and a colour film among them, two colour photos held out.
The run must learn (the loss falls), write a checkpoint that loads with
``colorstyle colorize --weights`` and in a job, keep the frozen blocks bit for bit, and
end at its step count when a worker or the driver is killed mid-run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
import torch
from PIL import Image

from colorstyle_core import loader
from colorstyle_core.catalog import build, generated_state_dict, get_spec
from colorstyle_core.training.colorize_loss import (
    bin_centres,
    classification_loss,
    quantize_529,
    rebalance_weights,
    siggraph17_loss,
    simulate_hints,
    soft_encode,
)
from colorstyle_core.training.colorizer import ColorizerTraining as ColorizerModule
from colorstyle_core.training.data import Source, is_grey, split_by_file, spread_frames
from jobs.cli import main as cli_main
from jobs.driver import RunOptions, run_job
from jobs.manifest import parse_manifest
from jobs.manifest_base import ManifestError
from jobs.report.training import build_training_report
from jobs.train.driver import TrainOptions, run_training
from jobs.train.manifest import parse_train_manifest
from tests.conftest import REPO

# ---- the paper's equations, against an independent implementation ------------------------------


def _np_soft_encode(ab: np.ndarray, centres: np.ndarray, k: int = 5, sigma: float = 5.0) -> np.ndarray:
    """Zhang et al. 2016 Sec. 2.1, pixel by pixel: the 5 nearest bins, Gaussian-weighted, summing to 1."""
    n, _, h, w = ab.shape
    z = np.zeros((n, len(centres), h, w))
    for i in range(n):
        for y in range(h):
            for x in range(w):
                d = np.sqrt(((centres - ab[i, :, y, x]) ** 2).sum(axis=1))
                nearest = np.argsort(d, kind="stable")[:k]
                g = np.exp(-d[nearest] ** 2 / (2 * sigma**2))
                z[i, nearest, y, x] = g / g.sum()
    return z


def _np_rebalance(p: np.ndarray, centres: np.ndarray, sigma: float = 5.0, lam: float = 0.5) -> np.ndarray:
    """Eq. 4: smooth p over ab (Gaussian, sigma), mix with uniform (lambda), invert, E_p~[w] = 1."""
    q = len(p)
    smooth = np.zeros(q)
    for a in range(q):
        for b in range(q):
            smooth[a] += p[b] * math.exp(-((centres[a] - centres[b]) ** 2).sum() / (2 * sigma**2))
    smooth /= smooth.sum()
    w = 1.0 / ((1 - lam) * smooth + lam / q)
    return w / (smooth * w).sum()


def _np_loss(logits: np.ndarray, z: np.ndarray, w: np.ndarray) -> float:
    """Eq. 2: -sum_hw v(Z_hw) sum_q Z_hwq log softmax(logits)_hwq, averaged over pixels and images."""
    n, _, h, width = logits.shape
    total = 0.0
    for i in range(n):
        for y in range(h):
            for x in range(width):
                v = logits[i, :, y, x]
                log_softmax = v - (v.max() + math.log(np.exp(v - v.max()).sum()))
                total += -w[np.argmax(z[i, :, y, x])] * float((z[i, :, y, x] * log_softmax).sum())
    return total / (n * h * width)


def test_eccv16_loss_matches_an_independent_implementation_of_the_equations():
    centres = bin_centres(generated_state_dict("eccv16", 3)["model_out.weight"])
    gen = torch.Generator().manual_seed(0)
    ab = (torch.rand(2, 2, 3, 4, generator=gen) - 0.5) * 140  # (N, 2, H, W) in Lab units
    logits = torch.randn(2, centres.shape[0], 3, 4, generator=gen) * 3
    train_ab = (torch.rand(1, 2, 6, 6, generator=gen) - 0.5) * 120  # "this training set"

    z = soft_encode(ab, centres)
    z_ref = _np_soft_encode(ab.double().numpy(), centres.double().numpy())
    assert np.abs(z.numpy() - z_ref).max() < 1e-5
    assert ((z > 0).sum(dim=1) == 5).all() and torch.allclose(z.sum(dim=1), torch.ones(2, 3, 4))

    train_z = soft_encode(train_ab, centres)
    p = train_z.double().sum(dim=(0, 2, 3))
    p = (p / p.sum()).float()
    w = rebalance_weights(p, centres)
    w_ref = _np_rebalance(p.double().numpy(), centres.double().numpy())
    assert np.abs(w.numpy() - w_ref).max() / w_ref.max() < 1e-4

    loss = float(classification_loss(logits, z, w))
    ref = _np_loss(logits.double().numpy(), z_ref, w_ref)
    assert abs(loss - ref) < 1e-4, (loss, ref)
    unweighted = float(classification_loss(logits, z, None))
    assert abs(unweighted - _np_loss(logits.double().numpy(), z_ref, np.ones(len(w_ref)))) < 1e-4


def test_rebalancing_favours_rare_colours_with_unit_expectation():
    centres = bin_centres(generated_state_dict("eccv16", 0)["model_out.weight"])
    p = torch.full((centres.shape[0],), 1e-4)
    p[:10] = 1.0  # ten common colours
    p = p / p.sum()
    w = rebalance_weights(p, centres)
    d2 = torch.cdist(centres.double(), centres.double()).pow(2)
    smooth = torch.exp(-d2 / 50.0) @ p.double()
    smooth = smooth / smooth.sum()
    assert abs(float((smooth * w.double()).sum()) - 1.0) < 1e-5
    assert float(w[:10].mean()) < float(w[10:].mean())
    # mixing with the uniform distribution bounds the weights: w <= Q / lambda before normalising
    raw = 1.0 / (0.5 * smooth + 0.5 / centres.shape[0])
    assert float(raw.max()) <= 2 * centres.shape[0]


def test_siggraph17_targets_loss_and_simulated_hints_follow_their_definitions():
    ab = torch.tensor([[-110.0, -105.0, 0.0, 4.9, 5.1, 110.0]]).view(1, 1, 1, 6).expand(1, 2, 1, 6).clone()
    ab[:, 1] = torch.tensor([110.0, 0.0, -5.1, 0.0, 14.9, -110.0])
    cells = quantize_529(ab)[0, 0].tolist()
    expected = [round((a + 110) / 10) * 23 + round((b + 110) / 10)
                for a, b in zip(ab[0, 0, 0].tolist(), ab[0, 1, 0].tolist())]
    assert cells == expected

    gen = torch.Generator().manual_seed(1)
    truth = (torch.rand(2, 2, 8, 8, generator=gen) - 0.5) * 100
    pred = (torch.rand(2, 2, 8, 8, generator=gen) - 0.5) * 100
    logits = torch.randn(2, 529, 2, 2, generator=gen)
    total, ce, huber = siggraph17_loss(logits, pred, truth)
    d = (pred - truth).abs().double().numpy() / 110
    huber_ref = np.where(d < 1, 0.5 * d**2, d - 0.5).mean()
    small = truth.double().numpy().reshape(2, 2, 2, 4, 2, 4).mean(axis=(3, 5))  # area pooling 8 -> 2
    cls = quantize_529(torch.from_numpy(small).float())
    lg = logits.double().numpy()
    ce_ref = np.mean([-(lg[i, :, y, x][cls[i, y, x]] - np.log(np.exp(lg[i, :, y, x]).sum()))
                      for i in range(2) for y in range(2) for x in range(2)])
    assert abs(float(huber) - huber_ref) < 1e-6 and abs(float(ce) - ce_ref) < 1e-5
    assert abs(float(total) - (ce_ref + 10 * huber_ref)) < 1e-4

    truth = (torch.rand(64, 2, 32, 32, generator=gen) - 0.5) * 100
    hint_ab, mask = simulate_hints(truth, torch.Generator().manual_seed(7))
    again = simulate_hints(truth, torch.Generator().manual_seed(7))
    assert torch.equal(hint_ab, again[0]) and torch.equal(mask, again[1])  # reproducible after a restart
    counts = [int(m.sum() > 0) for m in mask]
    assert 0 < sum(counts) < 64  # some images get hints, some none (geometric count)
    assert torch.equal(hint_ab * (1 - mask), torch.zeros_like(hint_ab))  # no colour outside the mask


def test_only_the_named_blocks_learn_and_batchnorm_statistics_stay():
    net = build("eccv16")
    start = generated_state_dict("eccv16", 0)
    net.load_state_dict(start)
    module = ColorizerModule(net, ["model8"])
    opt = torch.optim.Adam(module.trainable(), lr=1e-2)
    rgb = torch.rand(2, 3, 32, 32)
    loss, _ = module(rgb)
    loss.backward()
    opt.step()
    after = net.state_dict()
    changed = {k for k in start if not torch.equal(start[k], after[k])}
    assert changed and all(k.startswith("model8.") for k in changed)
    assert not any("running" in k for k in changed)
    with pytest.raises(ValueError, match="no block"):
        ColorizerModule(build("eccv16"), ["model9"])


def test_files_are_held_out_whole_and_film_frames_are_spread_over_the_film():
    sources = [Source(f"s3://b/{i}.jpg", "image") for i in range(10)] + [Source("s3://b/reel.mp4", "video")]
    train, held = split_by_file(sources, 0.2, seed=4)
    assert len(held) == 2 and not {s.uri for s in train} & {s.uri for s in held}
    assert split_by_file(sources, 0.2, seed=4) == (train, held)
    import random

    frames = spread_frames(1000, 10, random.Random(0))
    assert len(frames) == 10 and all(100 * i <= f < 100 * (i + 1) for i, f in enumerate(frames))
    assert spread_frames(5, 10, random.Random(0)) == (0, 1, 2, 3, 4)
    grey = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    assert is_grey(grey) and not is_grey(np.dstack([grey[..., 0], grey[..., 1], 255 - grey[..., 2]]))


def test_training_manifests_refuse_unknown_keys_and_blocks_with_their_line():
    good = "train: {kind: colorizer, data: [a/], output: out/}\n"
    m = parse_train_manifest(good)
    assert m.train.train_blocks == ["model7", "model8"] and m.train.model == "eccv16"
    assert m.run_name == parse_train_manifest(good).run_name  # a rerun resumes the same run
    with pytest.raises(ManifestError, match=r"train.yaml:3: train.stepz: unknown key"):
        parse_train_manifest("train:\n  kind: colorizer\n  stepz: 3\n  data: [a/]\n  output: o/\n")
    with pytest.raises(ManifestError, match="model9.*not blocks of eccv16"):
        parse_train_manifest("train: {kind: colorizer, data: [a/], output: o/, train_blocks: [model9]}\n")
    with pytest.raises(ManifestError, match="output"):
        parse_train_manifest("train: {kind: colorizer, data: [a/], output: o/../../etc}\n")


# ---- real runs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(shared, tmp_path_factory) -> dict[str, Path]:
    """Six small colour photos, a grey photo and the colour film to learn from; two colour photos held out."""
    root = tmp_path_factory.mktemp("train-data")
    (root / "archive").mkdir()
    (root / "held").mkdir()
    photos = sorted((shared / "data" / "color").glob("*.jpg"))
    for i, path in enumerate(photos[:8]):
        img = Image.open(path).convert("RGB")
        img.thumbnail((200, 200), Image.Resampling.LANCZOS)
        img.save(root / ("held" if i >= 6 else "archive") / f"{path.stem}.png")
    Image.open(shared / "data" / "gray" / "coffee.jpg").convert("L").convert("RGB").save(root / "archive" / "grey.png")
    shutil.copy(shared / "data" / "video" / "dev_kenburns_color.mp4", root / "archive" / "reel.mp4")
    return {"root": root, "archive": root / "archive", "held": root / "held"}


def _manifest(data: dict[str, Path], out: Path, *, steps: int, every: int, extra: str = "") -> str:
    return textwrap.dedent(f"""
        train:
          kind: colorizer
          model: eccv16
          untrained_init: true
          seed: 5
          data: ["{data['archive']}/"]
          validation_data: ["{data['held']}/"]
          output: "{out}"
          steps: {steps}
          batch_size: 8
          size: 64
          lr: 3.0e-4
          schedule: constant
          frames_per_video: 6
          checkpoint_every: {every}
        {extra}
        execution: {{workers: 2, cpus_per_worker: 1}}
    """)


@pytest.fixture(scope="module")
def trained(data, ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "eccv16-archive"
    manifest = parse_train_manifest(_manifest(data, out, steps=24, every=8))
    report = run_training(manifest, TrainOptions())
    assert report.exit_code == 0, report.error
    return {"out": out, "manifest": manifest, "report": report, "summary": report.summary}


def test_a_two_worker_run_learns_and_writes_a_checkpoint_in_the_published_layout(trained, data):
    out, summary = trained["out"], trained["summary"]
    metrics = pq.read_table(out / "train_metrics.parquet").to_pylist()
    assert [r["step"] for r in metrics] == list(range(1, 25))
    assert all(len(r["samples_per_s_by_worker"]) == 2 and r["samples_per_s"] > 0 for r in metrics)
    loss = [r["loss"] for r in metrics]
    assert np.mean(loss[-6:]) < np.mean(loss[:6]), loss  # it learns

    checkpoint = Path(summary["checkpoint"])
    digest = loader._hash_stream(checkpoint.open("rb").read)
    assert checkpoint.name == f"eccv16-{digest[:8]}.pth" and checkpoint.parent == out
    sidecar = json.loads(checkpoint.with_suffix(".json").read_text())
    assert sidecar["sha256"] == digest and sidecar["steps"] == 24 and sidecar["train_blocks"] == ["model7", "model8"]
    assert sidecar["base_sha256"] == "UNTRAINED" and "code_version" in sidecar and sidecar["final_loss"] == loss[-1]

    tuned = torch.load(checkpoint, map_location="cpu", weights_only=True)
    start = generated_state_dict("eccv16", 5)
    assert set(tuned) == set(start)  # the published layout: every key, nothing else
    frozen = [k for k in start if not k.startswith(("model7.", "model8."))]
    assert all(torch.equal(tuned[k], start[k]) for k in frozen)  # bit-identical
    trained_keys = [k for k in start if k.startswith(("model7.", "model8.")) and "running" not in k
                    and "num_batches" not in k]
    assert all(not torch.equal(tuned[k], start[k]) for k in trained_keys if tuned[k].is_floating_point())

    skipped = {Path(s["uri"]).name: s["reason"] for s in summary["skipped"]}
    assert skipped == {"grey.png": "grey: no colour to learn from"}
    validation = pq.read_table(out / "validation.parquet").to_pylist()
    held = {str(p) for p in data["held"].iterdir()}
    assert {r["sample"] for r in validation} == held
    assert sorted(r["weights"] for r in validation) == sorted(["start", "tuned", "grey"] * 2)
    assert summary["validation"]["tuned"]["ab_error"] > 0 and len(summary["examples"]) == 2
    assert all(Path(e["uri"]).is_file() for e in summary["examples"])


def test_the_checkpoint_loads_with_colorize_weights_and_in_a_job(trained, shared, tmp_path):
    checkpoint = trained["summary"]["checkpoint"]
    grey = shared / "data" / "gray" / "coffee.jpg"
    assert cli_main(["colorize", str(grey), str(tmp_path / "one.png"), "--weights", checkpoint]) == 0
    assert Image.open(tmp_path / "one.png").size == Image.open(grey).size
    job = parse_manifest(textwrap.dedent(f"""
        inputs: ["{grey}"]
        output: {{prefix: "{tmp_path / 'job'}"}}
        pipeline: {{colorize: {{model: eccv16, weights: {{uri: "{checkpoint}"}}}}}}
        execution: {{actors: 1, cpus_per_actor: 1}}
    """))
    report = run_job(job, RunOptions(progress=False))
    assert report.exit_code == 0
    frames = pq.read_table(next((tmp_path / "job").rglob("frames.parquet"))).to_pylist()
    digest = json.loads(Path(checkpoint).with_suffix(".json").read_text())["sha256"]
    assert digest[:16] in frames[0]["weights"]  # the job ran with the trained weights


def test_a_finished_run_started_again_writes_nothing(trained):
    out = trained["out"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    report = run_training(trained["manifest"], TrainOptions())
    assert report.exit_code == 0 and report.already_done
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_the_report_shows_the_loss_curve_and_the_held_out_comparison(trained, tmp_path):
    result = build_training_report(str(trained["out"]), str(tmp_path / "report.html"))
    page = Path(result.html_uri).read_text()
    assert not result.problems and Path(result.charts["training"]).is_file()
    assert "id='validation'" in page and page.count("data:image/jpeg;base64,") == 2
    assert "starting weights" in page and "trained weights" in page and "UNTRAINED" in page
    assert cli_main(["report", str(trained["out"]), "--out", str(tmp_path / "cli/")]) == 0


def _checkpoints(out: Path) -> list[str]:
    """The checkpoints Ray Train has registered for the run (written and recorded in its snapshot)."""
    for snapshot in out.glob("ray-train/*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
        except (OSError, ValueError):  # being rewritten
            continue
        if latest:
            return [latest["checkpoint_dir_name"]]
    return []


def test_a_killed_worker_is_replaced_and_the_run_ends_at_its_step_count(data, ray_local, tmp_path):
    import psutil

    out = tmp_path / "out"
    manifest = parse_train_manifest(_manifest(data, out, steps=16, every=4))
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(report=run_training(manifest, TrainOptions())))
    runner.start()
    try:
        for _ in range(3000):  # as soon as the first checkpoint is there, long before the run ends
            if _checkpoints(out) or not runner.is_alive():
                break
            time.sleep(0.1)
        assert runner.is_alive() and _checkpoints(out), "the run ended before a worker could be killed"
        workers = [p for p in psutil.process_iter(["cmdline"]) if "RayTrainWorker" in " ".join(p.info["cmdline"] or [])]
        assert workers, "no Ray Train worker process found"
        workers[-1].send_signal(signal.SIGKILL)
        killed_at = time.time()
    finally:
        runner.join(timeout=600)
    report = result["report"]
    assert report.exit_code == 0, report.error
    summary = report.summary
    assert summary["steps"] == 16 and summary["resumed_from"], summary.get("resumed_from")
    assert (out / "training.json").stat().st_mtime > killed_at
    steps = [r["step"] for r in pq.read_table(out / "train_metrics.parquet").to_pylist()]
    assert steps == list(range(1, 17))  # resumed, not restarted, and nothing counted twice


def test_a_killed_driver_is_resumed_by_running_the_manifest_again(data, ray_local, tmp_path):
    """The driver process dies (its Ray Train controller with it); the cluster lives on."""
    out = tmp_path / "out"
    path = tmp_path / "train.yaml"
    path.write_text(_manifest(data, out, steps=10, every=5))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    command = [sys.executable, "-m", "jobs.cli", "train", str(path)]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for _ in range(3000):
            if _checkpoints(out) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None and _checkpoints(out), "the run ended before its driver could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "training.json").exists()
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((out / "training.json").read_text())
    assert summary["steps"] == 10 and summary["resumed_from"] and summary["resumed_from"][0] >= 5
    steps = [r["step"] for r in pq.read_table(out / "train_metrics.parquet").to_pylist()]
    assert steps == list(range(1, 11))
    checkpoint = summary["checkpoint"]
    state, _ = loader.load_verified_state_dict(get_spec("eccv16"), loader.WeightsSource(checkpoint))
    assert set(state) == set(generated_state_dict("eccv16", 5))


def test_training_reads_and_writes_object_storage(data, ray_local, s3):
    import s3fs

    bucket, opts = s3
    fs = s3fs.S3FileSystem(**opts)
    for p in sorted(data["archive"].glob("*.png"))[:3]:
        fs.put(str(p), f"{bucket}/archive/{p.name}")
    fs.put(str(next(data["held"].glob("*.png"))), f"{bucket}/held/one.png")
    text = textwrap.dedent(f"""
        train:
          kind: colorizer
          model: eccv16
          untrained_init: true
          data: ["{bucket}/archive/"]
          validation_data: ["{bucket}/held/"]
          output: "{bucket}/models/run1"
          steps: 4
          batch_size: 4
          size: 64
          checkpoint_every: 2
        storage_options: {json.dumps(opts)}
        execution: {{workers: 2, cpus_per_worker: 1}}
    """)
    report = run_training(parse_train_manifest(text), TrainOptions())
    assert report.exit_code == 0, report.error
    checkpoint = report.summary["checkpoint"]
    assert checkpoint.startswith(f"{bucket}/models/run1/eccv16-") and fs.exists(checkpoint)
    assert fs.exists(f"{bucket}/models/run1/train_metrics.parquet")
    assert fs.glob(f"{bucket}/models/run1/ray-train/*/checkpoint_*")
    state, resolved = loader.load_verified_state_dict(get_spec("eccv16"), loader.WeightsSource(checkpoint, None, opts))
    assert resolved.sha256.startswith(checkpoint.rsplit("-", 1)[1][:8])


# ---- problems found before training, and problems no retry would solve --------------------------------------


def test_vgg_weights_for_the_other_network_stop_the_run_on_the_driver(shared, tmp_path):
    from colorstyle_core.catalog import save_generated

    vgg19 = tmp_path / "vgg19-weights.pth"
    digest = save_generated("vgg19", str(vgg19))
    path = tmp_path / "train.yaml"
    path.write_text(textwrap.dedent(f"""
        train:
          kind: stylizer
          styles: [{shared}/data/style/color/great_wave_hokusai.jpg]
          data: [{shared}/data/color/]
          output: {tmp_path}/out
          vgg_weights: {{uri: {vgg19}, sha256: {digest}}}
          steps: 4
        execution: {{workers: 2, cpus_per_worker: 1}}
    """))  # train.vgg left at its default, vgg16
    env = {**os.environ, "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "train", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(vgg19) in errors[0] and "train.vgg is vgg16" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "RayTrainWorker" not in done.stderr + done.stdout
    assert not (tmp_path / "out" / "ray-train").exists()  # Ray Train never started


def test_a_problem_every_worker_meets_ends_the_run_without_retries(ray_local, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(3):  # listed by the driver (it does not decode), unreadable on every worker
        (archive / f"scan{i}.jpg").write_text("not a JPEG")
    manifest = parse_train_manifest(textwrap.dedent(f"""
        train: {{kind: colorizer, untrained_init: true, data: ["{archive}/"], validation: 0.0, output: "{tmp_path}/out",
                 steps: 4, batch_size: 2, size: 32}}
        execution: {{workers: 2, cpus_per_worker: 1, max_failures: 3}}
    """))
    report = run_training(manifest, TrainOptions())
    assert report.exit_code == 1
    assert report.error.startswith("SetupError: no usable training data") and "scan0.jpg" in report.error
