"""The run's actor pool: created at once, each actor taking work as soon as it has loaded its models, and what the
scheduler knows of each one's health (loading, working, restarting after a death, dead).

:func:`start_pool` creates one :class:`~jobs.actor.PipelineActor` per requested slot (the driver declares
``num_gpus``/``num_cpus``; Ray pins each actor to its GPU) without waiting for them: on a cluster, GPU nodes come
up at different times, and the first units start as soon as the first actor is ready.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import ray
from ray.exceptions import RayActorError

from jobs.manifest import ExecutionSpec
from jobs.units.base import ActorInfo

log = logging.getLogger(__name__)


class PoolError(RuntimeError):
    """The actor pool could not start (an actor failed, or resources never came)."""


def gpus_per_actor(value: float | str) -> float:
    """GPUs each actor requests: the manifest's number, or for ``auto`` 1 when the cluster has GPUs, else 0."""
    if value != "auto":
        return float(value)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


@dataclass
class Pool:
    """The run's actors as created: they load their models in parallel, and work starts as each is ready.

    Attributes:
        actors: the actor handles, by index.
        booting: each actor's first ``info()`` call, until it answers (the actor is ready).
        deadline: wall clock by which at least one actor must be ready.
    """

    actors: list
    booting: dict[ray.ObjectRef, int]
    deadline: float
    describe: str


def start_pool(actor_class: type, ex: ExecutionSpec, args: tuple, ready_timeout_s: float) -> Pool:
    """Create ``ex.actors`` actors of ``actor_class``; they load their models while the scheduler starts (each takes
    work as soon as it is ready: on a cluster, GPU nodes come up at different times).

    Args:
        actor_class: the actor's Python class (``PipelineActor``, or a subclass in tests).
        ex: the job's execution settings (resources, retries).
        args: constructor arguments before the actor's name (spec, threads, job board).
        ready_timeout_s: how long to wait for the first actor (GPU nodes may have to boot), seconds.
    """
    gpus = gpus_per_actor(ex.gpus_per_actor)
    # two calls at a time: a frame range's encoder flush and upload overlap the next unit's network
    # (jobs.actor_threads.ComputeTurn serialises the model work)
    remote = ray.remote(actor_class).options(num_gpus=gpus, num_cpus=ex.cpus_per_actor, max_concurrency=2,
                                             max_restarts=ex.retries + 1, max_task_retries=0)
    actors = [remote.remote(*args, f"actor-{i}") for i in range(ex.actors)]
    return Pool(actors, {a.info.remote(): i for i, a in enumerate(actors)}, time.time() + ready_timeout_s,
                f"{ex.actors} x gpus={gpus}, cpus={ex.cpus_per_actor}")


class ActorStates:
    """Which actors can take work: loading their models, live, restarting (Ray brings a dead actor back), dead.

    An actor's death is blamed on a unit only when the unit ran alone on it (see :class:`~jobs.scheduler.Scheduler`):
    ``crowded`` says whether other units were in flight when it died.

    Args:
        pool: the run's actors.
        max_deaths: deaths after which an actor is dead for good (``retries + 1``: Ray's restarts).
        on_ready: told where each actor runs once it has loaded its models.
    """

    def __init__(self, pool: Pool, max_deaths: int, on_ready: Callable[[ActorInfo], None]):
        self.pool, self.max_deaths, self.on_ready = pool, max_deaths, on_ready
        self.actors = pool.actors
        self.booting: set[int] = set(pool.booting.values())  # loading their models
        self.load = [0] * len(self.actors)
        self.deaths = [0] * len(self.actors)
        self.dead: set[int] = set()
        self.recovering: set[int] = set()
        self.probes: dict[ray.ObjectRef, int] = {}  # health checks of actors that died (restarting?)
        self.crowded: dict[int, bool] = {}  # actor -> whether its last death had several units in flight
        self.exclusive: dict[int, ray.ObjectRef] = {}  # actor -> the unit running alone on it

    @property
    def refs(self) -> list[ray.ObjectRef]:
        """What to wait on besides the units: actors coming up, health checks."""
        return [*self.pool.booting, *self.probes]

    @property
    def all_dead(self) -> bool:
        return len(self.dead) == len(self.actors)

    def available(self, i: int) -> bool:
        return i not in self.dead and i not in self.recovering and i not in self.exclusive and i not in self.booting

    def pick(self, avoid: int | None, max_load: int, alone: bool = False) -> int | None:
        """The least loaded available actor with a free slot, never ``avoid`` (where the unit just failed) unless it
        is the only one; with ``alone`` an idle one; ``None`` = wait."""
        live = [i for i in range(len(self.actors)) if self.available(i)]
        others = [i for i in live if i != avoid]
        free = [i for i in (others or live) if self.load[i] < max_load]
        i = min(free, key=lambda i: self.load[i]) if free else None
        if i is not None and alone and self.load[i] > 0:
            idle = [j for j in live if self.load[j] == 0]
            i = idle[0] if idle else None
        return i

    def answered(self, ref: ray.ObjectRef) -> bool:
        """A boot or health check answered (``True``: it was one)."""
        if ref in self.pool.booting:
            self._booted(ref)
            return True
        if ref in self.probes:
            self._probed(ref)
            return True
        return False

    def _booted(self, ref: ray.ObjectRef) -> None:
        i = self.pool.booting.pop(ref)
        self.booting.discard(i)
        try:
            info = ray.get(ref)
        except RayActorError as e:
            log.warning("actor-%d failed to start: %s", i, str(e).strip().splitlines()[-1] if str(e).strip() else e)
            self.dead.add(i)
            return
        self.on_ready(info)

    def _probed(self, ref: ray.ObjectRef) -> None:
        i = self.probes.pop(ref)
        try:
            ray.get(ref)
        except RayActorError:
            if self.deaths[i] > self.max_deaths:
                self.dead.add(i)
                self.recovering.discard(i)
            else:  # still restarting: ask again
                self.probes[self.actors[i].info.remote()] = i
            return
        self.recovering.discard(i)
        log.info("actor-%d is back", i)

    def died(self, i: int, crowded: bool) -> None:
        """Actor ``i`` died (the first failure of this death): Ray restarts it, work stays away until it answers."""
        if i in self.recovering or i in self.dead:
            return
        self.crowded[i] = crowded
        self.deaths[i] += 1
        if self.deaths[i] > self.max_deaths:
            self.dead.add(i)
        else:
            self.recovering.add(i)
            self.probes[self.actors[i].info.remote()] = i

    def check_boot(self) -> None:
        """No actor ready by the deadline: the pool cannot start (resources never came).

        Raises:
            PoolError: naming what was requested and what the cluster has.
        """
        if self.booting and len(self.booting) + len(self.dead) == len(self.actors) and time.time() > self.pool.deadline:
            raise PoolError(f"no actor of the pool was ready in time (requested {self.pool.describe}); "
                            f"resources: {ray.cluster_resources()}")

    def boot_report(self) -> None:
        """Where the actors still loading at the end run (a short wait: short jobs may end before all are up)."""
        if self.pool.booting:
            ready, _ = ray.wait(list(self.pool.booting), num_returns=len(self.pool.booting), timeout=5.0)
            for ref in ready:
                self._booted(ref)
