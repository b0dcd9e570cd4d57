"""Submit a manifest to a Ray cluster through the Ray Jobs API.

The job's runtime environment carries this project's code (``colorstyle_core`` and
``jobs`` as ``py_modules``) and the manifest (in its ``working_dir``), so the
cluster runs exactly the version that submitted it. The cluster's Python must
already have the dependencies (torch, PyAV, ...): see ``cluster/``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from colorstyle_core import storage

PACKAGE_DIRS = (Path(__file__).resolve().parent.parent / "colorstyle_core", Path(__file__).resolve().parent)
FORWARDED_ENV = ("COLORSTYLE_CACHE", "COLORSTYLE_OFFLINE")
"""Environment passed on to the job (credentials are not: give the cluster its own)."""


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
           out=sys.stdout) -> Submission:
    """Send ``manifest_uri`` to the cluster at ``address`` and (unless ``wait`` is False) follow its logs.

    Args:
        manifest_uri: local path or fsspec URI of the manifest (validated before sending).
        address: the cluster's dashboard address, e.g. ``http://HEAD:8265``.
        wait: follow the job's log until it ends.
        extra_env: more environment variables for the job.
        out: where the followed log goes.
    Returns:
        The submission (with the final status when waited for).
    Raises:
        jobs.manifest.ManifestError: the manifest is invalid (nothing is sent).
        RuntimeError: the cluster cannot be reached.
    """
    from jobs.manifest import load_manifest

    load_manifest(manifest_uri)  # refuse bad manifests here, not on the cluster
    text = storage.read_bytes(manifest_uri)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory(prefix="colorstyle-submit-") as workdir:
        Path(workdir, "manifest.yaml").write_bytes(text)
        runtime_env = {
            "working_dir": workdir,
            "py_modules": [str(p) for p in PACKAGE_DIRS],
            "env_vars": env,
        }
        try:
            client = _client(address)
            submission_id = client.submit_job(
                entrypoint="python -m jobs.cli run manifest.yaml --no-progress",
                runtime_env=runtime_env,
                metadata={"tool": "colorstyle", "manifest": storage.basename(manifest_uri)},
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RuntimeError(f"cannot submit to the Ray cluster at {address}: {e}") from None
    if not wait:
        return Submission(submission_id, address)

    async def follow() -> None:
        async for lines in client.tail_job_logs(submission_id):
            out.write(lines)
            out.flush()

    asyncio.run(follow())
    status = str(client.get_job_status(submission_id))
    return Submission(submission_id, address, status.rsplit(".", 1)[-1])
