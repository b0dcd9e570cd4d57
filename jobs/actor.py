"""The Ray actor: one per GPU (or CPU slot), models built once, then work units and video assemblies.

A thin adapter around :class:`jobs.worker.UnitProcessor` (units) and
:func:`jobs.units.assembly.assemble_video` (videos). The driver decides its
resources (``num_gpus``, ``num_cpus``) when it creates the pool; Ray pins the
actor to its GPU by setting ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket

import ray
import torch

from colorstyle_core.provenance import mark_untrained_logs
from jobs.units.assembly import AssemblyResult, AssemblyTask, assemble_video
from jobs.units.base import ActorInfo, UnitResult, WorkerSpec, WorkUnit
from jobs.worker import UnitProcessor


class PipelineActor:
    """Loads the frame pipeline's models once; processes image shards and frame ranges.

    Args:
        spec: the job's worker settings.
        threads: torch CPU threads (the actor's CPU share).
        board: the name of the run's :class:`~jobs.progress.JobBoard`: the verified weights
            (fetched here, and again when Ray restarts this actor) and the progress per batch.
            By name, not by handle or object reference: Ray warns that a restartable actor
            with such constructor arguments may fail to restart.
        name: the actor's name in metrics (``actor-0`` ...).
    """

    def __init__(self, spec: WorkerSpec, threads: int, board: str, name: str):
        torch.set_num_threads(max(1, threads))
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        gpu_ids = tuple(str(g) for g in ray.get_gpu_ids())
        device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
        if spec.device != "auto":
            device = spec.device
        info = ActorInfo(
            name=name,
            node_id=ray.get_runtime_context().get_node_id(),
            hostname=socket.gethostname(),
            gpu_ids=gpu_ids,
            device=device,
            pid=os.getpid(),
            weights="",
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        board = ray.get_actor(board)
        refs = ray.get([board.weights.remote("colorizer"), board.weights.remote("stylizer")])
        colorizer_weights, stylizer_weights = (ray.get(ref) if ref is not None else None for ref in refs)
        self.processor = UnitProcessor(dataclasses.replace(spec, device=device), colorizer_weights,
                                       stylizer_weights, info)
        self.processor.on_progress = lambda key, frames: board.report.remote(key, frames)
        self.info_ = dataclasses.replace(info, weights=self.processor.pipeline.weights_tag)
        self.processor.ctx.actor = self.info_
        if self.processor.untrained:
            mark_untrained_logs()

    def info(self) -> ActorInfo:
        """Where this actor runs (node, GPU ids from Ray, device, loaded weights)."""
        return self.info_

    def process(self, unit: WorkUnit, attempt: int, submitted_at: float) -> UnitResult:
        """Process one work unit; per-input problems come back as failure rows."""
        return self.processor.process(unit, attempt, submitted_at)

    def assemble(self, task: AssemblyTask) -> AssemblyResult:
        """Join a video's segments into its output file (holding the turn at the models: it may re-encode)."""
        with self.processor.ctx.turn.hold():
            return assemble_video(task, self.processor.ctx)
