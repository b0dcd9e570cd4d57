"""Submit a manifest to a Ray cluster through the Ray Jobs API.

The job's runtime environment carries this project's code (``colorstyle_core`` and
``jobs`` as ``py_modules``) and the manifest (in its ``working_dir``), so the
cluster runs exactly the version that submitted it. The cluster's Python must
already have the dependencies (torch, PyAV, ...): see ``cluster/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from colorstyle_core import storage

PACKAGE_DIRS = (Path(__file__).resolve().parent.parent / "colorstyle_core", Path(__file__).resolve().parent)
FORWARDED_ENV = ("COLORSTYLE_CACHE", "COLORSTYLE_OFFLINE")
"""Environment passed on to the job (credentials are not: give the cluster its own)."""

RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0)
"""Waits between attempts at a transient Jobs API error: about a minute in all, the time a freshly
started head needs before its job agent answers (``No available agent to submit job``)."""

_TRANSIENT = ("No available agent", "status code 5", "Failed to connect", "Connection refused", "Cannot connect",
              "Max retries exceeded", "temporarily unavailable", "timed out")

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Whether a Jobs API error is worth retrying: the head is starting, busy or briefly unreachable."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in _TRANSIENT)


def with_retries(call: Callable[[], T], what: str, delays: tuple[float, ...] = RETRY_DELAYS_S,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, retried after each of ``delays`` while it fails with a transient error.

    Raises:
        RuntimeError: one sentence naming ``what``, the attempts made and the last cause.
    """
    for attempt, delay in enumerate((*delays, None), start=1):
        try:
            return call()
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
            cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if delay is None or not is_transient(e):
                tried = f" after {attempt} attempts over {sum(delays[:attempt - 1]):.0f} s" if attempt > 1 else ""
                raise RuntimeError(f"{what} failed{tried}: {cause}") from None
            log.warning("%s: %s; retrying in %.0f s", what, cause, delay)
            sleep(delay)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Submission:
    """A submitted job: its id in Ray, the dashboard address and the final status (when waited for)."""

    submission_id: str
    address: str
    status: str | None = None


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def submit(manifest_uri: str, address: str, *, wait: bool = True, extra_env: dict[str, str] | None = None,
           out=None) -> Submission:
    """Send ``manifest_uri`` to the cluster at ``address`` and (unless ``wait`` is False) follow its logs.

    Args:
        manifest_uri: local path or fsspec URI of the manifest (validated before sending).
        address: the cluster's dashboard address, e.g. ``http://HEAD:8265``.
        wait: follow the job's log until it ends.
        extra_env: more environment variables for the job.
        out: where the followed log goes (default: standard output at the time of the call).
    Returns:
        The submission (with the final status when waited for).
    Raises:
        jobs.manifest.ManifestError: the manifest is invalid (nothing is sent).
        RuntimeError: the cluster cannot be reached, or keeps failing for about a minute
            (:data:`RETRY_DELAYS_S`); one sentence.
    """
    from jobs.manifest import parse_manifest
    from jobs.manifest_base import is_training, read_text
    from jobs.train.manifest import parse_train_manifest

    text = read_text(manifest_uri)
    training = is_training(text)
    # refuse bad manifests here, not on the cluster
    (parse_train_manifest if training else parse_manifest)(text, manifest_uri)
    command = "train manifest.yaml" if training else "run manifest.yaml --no-progress"
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory(prefix="colorstyle-submit-") as workdir:
        Path(workdir, "manifest.yaml").write_text(text, encoding="utf-8")
        runtime_env = {
            "working_dir": workdir,
            "py_modules": [str(p) for p in PACKAGE_DIRS],
            "env_vars": env,
        }
        client = with_retries(lambda: _client(address), f"connecting to the Ray cluster at {address}")
        submission_id = f"colorstyle-{uuid.uuid4().hex[:12]}"  # ours: a retried submit cannot start it twice

        def send() -> str:
            try:
                return client.submit_job(
                    entrypoint=f"python -m jobs.cli {command}", runtime_env=runtime_env,
                    submission_id=submission_id,
                    metadata={"tool": "colorstyle", "manifest": storage.basename(manifest_uri)})
            except RuntimeError as e:
                if "already exists" in str(e):  # an earlier attempt got through before its answer was lost
                    return submission_id
                raise

        submission_id = with_retries(send, f"submitting {manifest_uri} to the Ray cluster at {address}")
    if not wait:
        return Submission(submission_id, address)

    out = out or sys.stdout

    async def follow() -> None:
        async for lines in client.tail_job_logs(submission_id):
            out.write(lines)
            out.flush()

    asyncio.run(follow())
    status = str(with_retries(lambda: client.get_job_status(submission_id), f"reading the status of {submission_id}"))
    return Submission(submission_id, address, status.rsplit(".", 1)[-1])
