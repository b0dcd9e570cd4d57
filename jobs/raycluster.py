"""Connecting a driver (a job's or a training run's) to Ray."""

from __future__ import annotations

import logging
import os

import ray


def connect_ray(address: str | None) -> bool:
    """Connect to the cluster at ``address`` (default ``$RAY_ADDRESS``), else start an embedded local Ray.

    Returns:
        True when this call started Ray (so the caller shuts it down).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:  # an embedded single-machine cluster: no token needed (Ray 2.60 enables it by default)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    return True
