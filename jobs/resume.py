"""What earlier runs of a job finished, so a rerun skips it.

A piece of work counts as done only when its metrics record exists *and* its output is
still in storage: an image whose frame row was written and whose output file exists,
a frame range whose unit row exists and whose staged segment is still there, a video
whose row exists and whose output exists. Anything else is redone.

The records are read with only the columns needed (concurrently, :meth:`MetricsStore.table`),
the output prefix is listed as a stream, and what is done is kept as 8-byte digests in sorted
arrays (:class:`DigestSet`): a million finished images cost 8 MB, not the hundreds a set of
URIs would.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from colorstyle_core import storage
from jobs.listing import digest, walk_files
from jobs.manifest import Manifest
from jobs.metrics.store import MetricsStore
from jobs.paths import staging_root, under


class DigestSet:
    """A set of strings kept as sorted 8-byte digests (membership by binary search).

    A false positive needs two of the job's names to share 64 bits of BLAKE2b: about one in
    ``2**64 / n**2`` (one in 18 million for a million names).
    """

    def __init__(self, items: Iterable[str] = ()):
        self._d = np.unique(np.fromiter((digest(s) for s in items), dtype=np.uint64))

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str) or self._d.size == 0:
            return False
        h = np.uint64(digest(item))
        i = int(np.searchsorted(self._d, h))
        return i < self._d.size and self._d[i] == h

    def __len__(self) -> int:
        return int(self._d.size)

    def __bool__(self) -> bool:
        return bool(self._d.size)


class DoneState:
    """What earlier runs of the job finished (read from its metrics records).

    Attributes:
        images: input URIs with a written output.
        ranges: unit ids of staged frame ranges (and carried keyframe hints).
        videos: keys of assembled videos.
    """

    def __init__(self, images: Iterable[str] = (), ranges: Iterable[str] = (), videos: Iterable[str] = ()):
        self.images, self.ranges, self.videos = DigestSet(images), DigestSet(ranges), DigestSet(videos)


def load_done_state(store: MetricsStore, manifest: Manifest) -> DoneState:
    """What earlier runs finished: recorded in the metrics *and* still present in storage.

    Raises:
        storage.StorageError: the metrics or the output prefix cannot be listed.
    """
    frames = store.table("frames", ["kind", "unit_id", "output_uri"])
    units = store.table("units", ["kind"])
    videos = store.table("videos", ["output_uri"])
    if not (frames.num_rows or units.num_rows or videos.num_rows):
        return DoneState()
    existing = _existing(manifest)
    kinds, inputs, outputs = (frames[c].to_pylist() for c in ("kind", "input_uri", "output_uri"))
    images = [i for k, i, o in zip(kinds, inputs, outputs) if k == "image" and o in existing]
    staging = staging_root(manifest.output.prefix, store.job_id)
    segment_of = {u: o for u, o, k in zip(frames["unit_id"].to_pylist(), outputs, kinds) if k == "video"}
    ranges = []
    for uid, kind in zip(units["unit_id"].to_pylist(), units["kind"].to_pylist()):
        if kind == "video" and segment_of.get(uid) in existing:
            ranges.append(uid)
        elif kind == "hints" and under(staging, uid.removeprefix("hints-"), "hints.parquet") in existing:
            ranges.append(uid)  # the video's keyframe hints are carried through its shots already
    done_videos = [k for k, out in zip(videos["video_key"].to_pylist(), videos["output_uri"].to_pylist())
                   if out in existing or storage.is_dir(out, manifest.output_storage_options)]  # a sequence's frames
    return DoneState(images, ranges, done_videos)


def _existing(manifest: Manifest) -> DigestSet:
    """Every file under the output prefix (staging included), listed as a stream."""
    try:
        with storage.errors(manifest.output.prefix, "list"):
            fs, root = storage.filesystem(manifest.output.prefix, manifest.output_storage_options)
            return DigestSet(storage.unstrip(fs, p) for p in walk_files(fs, root))
    except FileNotFoundError:
        return DigestSet()

