"""The Ray actor: one per GPU (or CPU slot), models built once, then work units.

A thin adapter around :class:`jobs.worker.UnitProcessor`. The driver decides its
resources (``num_gpus``, ``num_cpus``) when it creates the pool; Ray pins the
actor to its GPU by setting ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import logging
import os
import socket

import ray
import torch

from colorstyle_core.provenance import mark_untrained_logs
from jobs.units import ActorInfo, AssemblyResult, AssemblyTask, FrameRange, ImageShard, UnitResult
from jobs.worker import UnitProcessor, WeightsPayload, WorkerSpec


class PipelineActor:
    """Loads the colorizer and stylizer once; processes image shards and frame ranges.

    Args:
        spec: the job's worker settings.
        colorizer_weights, stylizer_weights: verified weights from the driver (Ray
            resolves the object references), or ``None``.
        name: the actor's name in metrics (``actor-0`` ...).
        threads: torch CPU threads (the actor's CPU share).
    """

    def __init__(self, spec: WorkerSpec, colorizer_weights: WeightsPayload | None,
                 stylizer_weights: WeightsPayload | None, name: str, threads: int):
        torch.set_num_threads(max(1, threads))
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        gpu_ids = tuple(str(g) for g in ray.get_gpu_ids())
        device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
        if spec.device != "auto":
            device = spec.device
        spec = WorkerSpec(**{**spec.__dict__, "device": device})
        self.info_ = ActorInfo(
            name=name,
            node_id=ray.get_runtime_context().get_node_id(),
            hostname=socket.gethostname(),
            gpu_ids=gpu_ids,
            device=device,
            pid=os.getpid(),
            weights="",
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        self.processor = UnitProcessor(spec, colorizer_weights, stylizer_weights, self.info_)
        self.info_ = ActorInfo(**{**self.info_.__dict__, "weights": self.processor.weights_text})
        self.processor.actor = self.info_
        if self.processor.untrained:
            mark_untrained_logs()

    def info(self) -> ActorInfo:
        """Where this actor runs (node, GPU ids from Ray, device, loaded weights)."""
        return self.info_

    def process(self, unit: ImageShard | FrameRange, attempt: int, submitted_at: float) -> UnitResult:
        """Process one work unit; per-input problems come back as failure rows."""
        if isinstance(unit, ImageShard):
            return self.processor.process_shard(unit, attempt, submitted_at)
        return self.processor.process_range(unit, attempt, submitted_at)

    def assemble(self, task: AssemblyTask) -> AssemblyResult:
        """Join a video's segments into its output file."""
        return self.processor.assemble(task)
