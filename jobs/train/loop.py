"""The training loop each Ray Train worker runs (``train_loop_per_worker``), the same for every kind.

One readable loop: build the task's model from the verified starting weights, read this
worker's share of the training files, resume from the last checkpoint when there is one,
then ``steps`` optimiser steps of data-parallel SGD (Adam; DDP averages the gradients,
gloo on CPUs, NCCL on GPUs). Every ``checkpoint_every`` steps rank 0 saves the model (in
the published layout), the optimiser, the schedule, the step and the metrics so far, and
reports them to Ray Train, which restores the last one after a worker failure and when
the same run is started again after a crash. At the end rank 0 exports the checkpoint,
the metrics table and the validation table.

Sampling is seeded by (seed, step, worker), so a resumed run draws what the original
would have drawn.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import tempfile
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from colorstyle_core import imageio, loader, storage
from colorstyle_core.training.data import Source, batch, load_pairs, load_source
from jobs.train.manifest import TrainManifest
from jobs.train.outputs import METRICS_SCHEMA, VALIDATION_SCHEMA, TrainPaths, export_checkpoint
from jobs.train.tasks import make_task

log = logging.getLogger("colorstyle.train")

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.json"


def _schedule(kind: str, steps: int, warmup: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "cosine":
            progress = (step - warmup) / max(1, steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if kind == "step":
            return 0.1 if step >= 2 * steps // 3 else 1.0
        return 1.0
    return factor


def _gather(value: Any) -> list[Any]:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, value)
        return out
    return [value]


class SetupError(ValueError):
    """A run that cannot train, the same on every worker and every attempt (no usable data)."""


RECURRING = (SetupError, loader.WeightsError, imageio.ImageDecodeError)
"""Errors of a worker's setup that a retry would meet again (the driver checks them first; a worker
that meets one anyway ends the run with it instead of being restarted ``max_failures`` times)."""


class FatalNote:
    """Where a worker leaves the error that ends the run without a retry (a Ray actor named per run, created by
    the driver): Ray Train keeps only the metrics reported with a checkpoint, so the error cannot travel as one."""

    def __init__(self) -> None:
        self.message: str | None = None

    def set(self, message: str) -> None:
        """Keep the first worker's message (every worker meets the same error)."""
        self.message = self.message or message

    def get(self) -> str | None:
        return self.message


def _setup(config: dict[str, Any], manifest: TrainManifest, rank: int, world: int):
    """The task, this worker's images (and frame pairs), the task's facts and the files skipped.

    Raises:
        SetupError, colorstyle_core.loader.WeightsError: see :data:`RECURRING`.
    """
    spec = manifest.train
    start_weights = ray.get(config["start"]) if config.get("start") is not None else None
    styles = ray.get(config["styles"]) if config.get("styles") is not None else ()
    task = make_task(manifest, start_weights, styles)

    sources = [Source(uri, kind) for uri, kind in config["train"]]
    mine = sources[rank::world] or sources  # more workers than files: every worker reads them all
    named, skipped = _load_pool(mine, spec.size, spec.frames_per_video, spec.seed, manifest.storage_options)
    pool = [image for _, image in named]
    skipped = list(config.get("skipped", [])) + [s for part in _gather(skipped) for s in part]
    if sum(_gather(len(pool))) == 0:  # no colour material anywhere
        raise SetupError("no usable training data: " + "; ".join(f"{s['uri']}: {s['reason']}" for s in skipped))
    if not pool:  # fewer usable files than workers: this one borrows every usable file
        named, _ = _load_pool(sources, spec.size, spec.frames_per_video, spec.seed, manifest.storage_options)
        pool = [image for _, image in named]
    facts = task.prepare(pool, spec.size)
    pairs_pool: list[torch.Tensor] = []
    if task.needs_pairs:  # every worker needs pairs (the same loss terms on every rank): borrow when it has none
        pairs_pool = _load_pairs(mine, spec.size, spec.frames_per_video, spec.seed, manifest.storage_options)
        facts["temporal_pairs"] = sum(_gather(len(pairs_pool)))
        if facts["temporal_pairs"] == 0:
            raise SetupError("temporal_weight is set but no video in the data has two consecutive colour frames")
        if not pairs_pool:
            pairs_pool = _load_pairs(sources, spec.size, spec.frames_per_video, spec.seed, manifest.storage_options)

    return task, pool, pairs_pool, facts, skipped


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's entry point (one call per worker).

    ``config``: ``manifest`` (the training manifest as plain data), ``start`` (object
    reference to the verified starting weights, or ``None``), ``train`` / ``validation``
    (the sources, as ``[uri, kind]``), ``threads``, ``fatal_note`` (the name of the run's :class:`FatalNote`).
    """
    manifest = TrainManifest.model_validate(config["manifest"])
    spec = manifest.train
    paths = TrainPaths(spec.output, manifest.storage_options)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    torch.manual_seed(spec.seed)
    try:  # what every attempt would meet alike is reported once, not retried by max_failures
        task, pool, pairs_pool, facts, skipped = _setup(config, manifest, rank, world)
    except RECURRING as e:
        ray.get(ray.get_actor(config["fatal_note"]).set.remote(f"{type(e).__name__}: {e}"))
        return

    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(task.module)
    optimizer = torch.optim.Adam(task.trainable(), lr=spec.lr, betas=(0.9, 0.99),
                                 weight_decay=getattr(spec, "weight_decay", 0.0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(spec.schedule, spec.steps, spec.warmup_steps))
    step, rows, resumed = 0, [], []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
            with open(os.path.join(folder, METRICS_FILE)) as f:
                rows = json.load(f)
        task.module.net.load_state_dict(state["model"])  # type: ignore[union-attr]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        resumed = [*state.get("resumed", []), step]  # the steps this run was restored at
        if rank == 0:
            log.warning("resumed from the checkpoint at step %d of %d", step, spec.steps)

    per_worker = max(1, math.ceil(spec.batch_size / world))
    log_every = max(1, spec.steps // 20)
    started = time.time() - (rows[-1]["wall_s"] if rows else 0.0)
    while step < spec.steps:
        tick = time.perf_counter()
        generator = torch.Generator().manual_seed(spec.seed * 1_000_003 + step * 1_009 + rank)
        x = batch(pool, per_worker, spec.size, generator).to(device)
        pairs = batch(pairs_pool, max(1, per_worker // 2), spec.size, generator).to(device) if pairs_pool else None
        loss, parts = task.loss(model, x, generator, pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        rate = per_worker / (time.perf_counter() - tick)
        losses, rates = _gather(parts), _gather(rate)
        if rank == 0:
            mean = {k: sum(p[k] for p in losses) / len(losses) for k in losses[0]}
            rows.append({"step": step, "lr": scheduler.get_last_lr()[0], "wall_s": time.time() - started,
                         "samples_per_s": sum(rates), "samples_per_s_by_worker": rates, **mean})
        if rank == 0 and (step % log_every == 0 or step == spec.steps):
            log.warning("step %d/%d: loss %.4f, %.2f samples/s, lr %.2e", step, spec.steps, rows[-1]["loss"],
                        rows[-1]["samples_per_s"], rows[-1]["lr"])
        if step % spec.checkpoint_every == 0 or step == spec.steps:
            _report(task, optimizer, scheduler, step, rows, resumed, rank)

    if rank == 0:
        _finish(task, manifest, paths, rows, skipped, facts, config, world, resumed)


def _sampled(source: Source, frames_per_video: int, seed: int, opts) -> Source:
    """A video source with the frames it is sampled at (seeded by ``seed`` and its URI; spread over the film).

    Raises:
        OSError, ValueError: the video cannot be opened or probed.
    """
    import random

    from colorstyle_core.training.data import spread_frames
    from colorstyle_core.video import probe

    if source.kind != "video":
        return source
    with storage.open_source(source.uri, opts) as video:
        count = probe(video, source.uri).frame_count
    return Source(source.uri, "video", spread_frames(count, frames_per_video, random.Random(f"{seed}:{source.uri}")))


def _load_pairs(sources: list[Source], size: int, frames_per_video: int, seed: int, opts) -> list[torch.Tensor]:
    """Consecutive frame pairs at each sampled frame of this worker's videos (temporal loss)."""
    pairs = []
    for source in (s for s in sources if s.kind == "video"):
        try:
            pairs += load_pairs(_sampled(source, frames_per_video, seed, opts), size, opts)
        except (OSError, ValueError):
            continue  # already listed as skipped by _load_pool
    return pairs


def _load_pool(sources: list[Source], size: int, frames_per_video: int, seed: int, opts
               ) -> tuple[list[tuple[str, torch.Tensor]], list[dict[str, str]]]:
    """This worker's images, named (``uri`` or ``uri#frame N``) and kept small (uint8), and the files it
    skipped, with reasons."""
    pool, skipped = [], []
    for source in sources:
        try:
            source = _sampled(source, frames_per_video, seed, opts)
        except (OSError, ValueError) as e:
            skipped.append({"uri": source.uri, "reason": f"unreadable: {e}"})
            continue
        images, reason = load_source(source, size, opts)
        if reason:
            skipped.append({"uri": source.uri, "reason": reason})
        names = [f"{source.uri}#frame {i}" for i in source.frames] if source.kind == "video" else [source.uri]
        pool.extend(zip(names, images))
    return pool, skipped


def _report(task, optimizer, scheduler, step: int, rows: list, resumed: list[int], rank: int) -> None:
    """A checkpoint (rank 0 writes it) and the latest metrics, to Ray Train."""
    metrics = {"step": step, **({k: v for k, v in rows[-1].items() if isinstance(v, float)} if rows else {})}
    with tempfile.TemporaryDirectory(prefix="colorstyle-ckpt-") as folder:
        checkpoint = None
        if rank == 0:
            torch.save({"model": task.export_state(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step,
                        "resumed": resumed}, os.path.join(folder, STATE_FILE))
            with open(os.path.join(folder, METRICS_FILE), "w") as f:
                json.dump(rows, f)
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)


def _finish(task, manifest: TrainManifest, paths: TrainPaths, rows: list, skipped: list, facts: dict,
            config: dict, world: int, resumed: list[int]) -> None:
    """Rank 0, after the last step: the checkpoint, the metrics table, the validation table, the summary."""
    spec = manifest.train
    state = task.export_state()
    sidecar = {**task.sidecar(), "run": manifest.run_name, "steps": spec.steps, "batch_size": spec.batch_size,
               "final_loss": rows[-1]["loss"] if rows else None, "data": [s.model_dump(mode="json") for s in spec.data],
               "code_version": config.get("code_version"), "manifest": manifest.redacted()}
    checkpoint_uri = export_checkpoint(paths, task.name, state, sidecar)
    storage.write_bytes_atomic(paths.metrics, _parquet(rows, METRICS_SCHEMA), paths.options)
    validation, examples = [], []
    held = [Source(uri, kind) for uri, kind in config["validation"]]
    if held:
        named, held_skipped = _load_pool(held, spec.size, max(1, spec.frames_per_video // 4), spec.seed + 1,
                                         manifest.storage_options)
        skipped = skipped + held_skipped
        validation, strips = task.validate(named, state, ray.train.torch.get_device())
        storage.write_bytes_atomic(paths.validation, _parquet(validation, VALIDATION_SCHEMA), paths.options)
        for k, (name, strip) in enumerate(strips):
            uri = paths.example(k, name)
            storage.write_bytes_atomic(uri, imageio.encode_image(strip, uri), paths.options)
            examples.append({"sample": name, "uri": uri})
    means: dict[str, dict[str, float]] = {}
    for which in dict.fromkeys(r["weights"] for r in validation):  # start, tuned, and the baseline
        picked = [r for r in validation if r["weights"] == which]
        keys = [k for k in picked[0] if k not in ("sample", "weights") and picked[0][k] is not None]
        means[which] = {k: sum(r[k] for r in picked if r[k] is not None) / len(picked) for k in keys}
    summary = {"run": manifest.run_name, "kind": spec.kind, "model": task.name, "checkpoint": checkpoint_uri,
               "steps": spec.steps, "workers": world, "first_loss": rows[0]["loss"] if rows else None,
               "final_loss": rows[-1]["loss"] if rows else None,
               "samples_per_s": sum(r["samples_per_s"] for r in rows[-10:]) / max(1, len(rows[-10:])),
               "wall_s": rows[-1]["wall_s"] if rows else 0.0, "skipped": skipped, "validation": means,
               "validation_samples": len({r["sample"] for r in validation}), "examples": examples,
               "resumed_from": resumed, **facts,
               "manifest": manifest.redacted()}
    storage.write_bytes_atomic(paths.summary, json.dumps(summary, indent=2, default=str).encode(), paths.options)


def _parquet(rows: list[dict], schema: pa.Schema) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, compression="zstd")
    return buf.getvalue()
