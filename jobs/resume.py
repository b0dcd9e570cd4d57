"""What earlier runs of a job finished, so a rerun skips it.

A piece of work counts as done only when its metrics record exists *and* its output is
still in storage: an image whose frame row was written and whose output file exists,
a frame range whose unit row exists and whose staged segment is still there, a video
whose row exists and whose output exists. Anything else is redone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from colorstyle_core import storage
from jobs.manifest import Manifest
from jobs.metrics.store import MetricsStore
from jobs.paths import CONTROL_DIR, staging_root, under


@dataclass
class DoneState:
    """What earlier runs of the job finished (read from its metrics records)."""

    images: set[str] = field(default_factory=set)  # input URIs with a written output
    ranges: set[str] = field(default_factory=set)  # unit ids of staged frame ranges (and carried keyframe hints)
    videos: set[str] = field(default_factory=set)  # keys of assembled videos


def load_done_state(store: MetricsStore, manifest: Manifest) -> DoneState:
    """What earlier runs finished: recorded in the metrics *and* still present in storage.

    Raises:
        storage.StorageError: the metrics or the output prefix cannot be listed.
    """
    done = DoneState()
    frames, units, videos = store.frames(), store.units(), store.videos()
    if not (frames.num_rows or units.num_rows or videos.num_rows):
        return done
    try:
        with storage.errors(manifest.output.prefix, "list"):
            fs, root = storage.filesystem(manifest.output.prefix, manifest.output_storage_options)
            existing = {storage.unstrip(fs, p) for p in fs.find(root)}
    except FileNotFoundError:
        existing = set()
    for kind, inp, out in zip(frames["kind"].to_pylist(), frames["input_uri"].to_pylist(),
                              frames["output_uri"].to_pylist()):
        if kind == "image" and out in existing:
            done.images.add(inp)
    staged = {uri for uri in existing if f"/{CONTROL_DIR}/staging/" in uri}
    segment_of = {u: o for u, o, k in zip(frames["unit_id"].to_pylist(), frames["output_uri"].to_pylist(),
                                          frames["kind"].to_pylist()) if k == "video"}
    staging = staging_root(manifest.output.prefix, store.job_id)
    for uid, kind in zip(units["unit_id"].to_pylist(), units["kind"].to_pylist()):
        if kind == "video" and segment_of.get(uid) in staged:
            done.ranges.add(uid)
        elif kind == "hints" and under(staging, uid.removeprefix("hints-"), "hints.parquet") in staged:
            done.ranges.add(uid)  # the video's keyframe hints are carried through its shots already
    for key, out in zip(videos["video_key"].to_pylist(), videos["output_uri"].to_pylist()):
        if out in existing:
            done.videos.add(key)
    return done
