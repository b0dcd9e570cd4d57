"""The Ray actor: one per GPU (or CPU slot), models built once, then work units.

A thin adapter around :class:`jobs.worker.UnitProcessor`. The driver decides its
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

from colorstyle_core.pipeline import ModelWeights
from colorstyle_core.provenance import mark_untrained_logs
from jobs.units import ActorInfo, AssemblyResult, AssemblyTask, UnitResult, WorkUnit
from jobs.worker import UnitProcessor, WorkerSpec


class PipelineActor:
    """Loads the frame pipeline's models once; processes image shards and frame ranges.

    Args:
        spec: the job's worker settings.
        colorizer_weights, stylizer_weights: verified weights from the driver (Ray
            resolves the object references), or ``None``.
        threads: torch CPU threads (the actor's CPU share).
        name: the actor's name in metrics (``actor-0`` ...).
    """

    def __init__(self, spec: WorkerSpec, colorizer_weights: ModelWeights | None,
                 stylizer_weights: ModelWeights | None, threads: int, name: str):
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
        self.processor = UnitProcessor(dataclasses.replace(spec, device=device), colorizer_weights,
                                       stylizer_weights, info)
        self.info_ = dataclasses.replace(info, weights=self.processor.pipeline.weights_tag)
        self.processor.actor = self.info_
        if self.processor.untrained:
            mark_untrained_logs()

    def info(self) -> ActorInfo:
        """Where this actor runs (node, GPU ids from Ray, device, loaded weights)."""
        return self.info_

    def process(self, unit: WorkUnit, attempt: int, submitted_at: float) -> UnitResult:
        """Process one work unit; per-input problems come back as failure rows."""
        return self.processor.process(unit, attempt, submitted_at)

    def assemble(self, task: AssemblyTask) -> AssemblyResult:
        """Join a video's segments into its output file."""
        return self.processor.assemble(task)
