"""The actor's decode/encode threads (``execution.overlap_io``): the same bytes as one thread, and an
encoder failure surfaces as the unit's error instead of hanging the actor.

Runs the actor's own code (:class:`jobs.worker.UnitProcessor`) in this process, without Ray.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import textwrap

import pytest

from colorstyle_core import video
from jobs.driver import worker_spec
from jobs.manifest import parse_manifest
from jobs.plan import plan_job
from jobs.units import ActorInfo
from jobs.worker import UnitProcessor
from tests.media import decoded_frames


def _processor_and_units(shared, out, overlap: bool):
    manifest = parse_manifest(textwrap.dedent(f"""
        inputs: [{{uri: "{shared / 'data' / 'video' / 'dev_kenburns_gray.mp4'}", frames: {{start: 0, end: 20}}}}]
        output: {{prefix: "{out}"}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{batch_size: 3, frames_per_range: 10, overlap_io: {str(overlap).lower()}, cpus_per_actor: 2}}
    """), "overlap.yaml")
    plan = plan_job(manifest)
    spec = dataclasses.replace(worker_spec(manifest, plan.job_id, "test"), device="cpu")
    actor = ActorInfo("test", "local", socket.gethostname(), (), "cpu", os.getpid(), "")
    return UnitProcessor(spec, None, None, actor), plan.ranges


def test_overlapped_decode_and_encode_write_the_same_frames_as_one_thread(shared, tmp_path):
    segments = {}
    for overlap in (False, True):
        processor, units = _processor_and_units(shared, tmp_path / str(overlap), overlap)
        assert len(units) == 2
        for unit in units:
            result = processor.process(unit, 0, 0.0)
            assert [r.frame_index for r in result.frame_rows] == list(range(unit.write_start, unit.stop))
        segments[overlap] = [decoded_frames(u.segment_uri) for u in units]
    for serial, overlapped in zip(segments[False], segments[True]):
        assert len(serial) == len(overlapped) == 10
        assert all((a == b).all() for a, b in zip(serial, overlapped))


def test_an_encoder_failure_is_the_units_error(shared, tmp_path, monkeypatch):
    processor, units = _processor_and_units(shared, tmp_path, True)
    calls = {"n": 0}
    write = video.SegmentWriter.write

    def failing(self, rgb, index):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (injected)")
        return write(self, rgb, index)

    monkeypatch.setattr(video.SegmentWriter, "write", failing)
    with pytest.raises(OSError, match="disk full"):
        processor.process(units[0], 0, 0.0)
    assert calls["n"] == 4  # nothing is written after the failed frame
