"""Where a job's metrics live, and how they are written and read back at any scale.

Layout under the job's metrics prefix::

    parts/<table>/<run id>-L<level>-<seq>.parquet   rows of many finished units (jobs.metrics.writer)
    frames.parquet units.parquet videos.parquet quality.parquet failures.parquet summary.json
                                                  consolidated at the end of every run that did something
    runs/<run id>/failures.parquet, summary.json  one run's problems and figures

A table is its consolidated file plus the parts written since: :meth:`MetricsStore.table` reads
them all at once (concurrently: fsspec's batched ``cat`` on object stores, a thread pool
elsewhere), and :meth:`MetricsStore.consolidate` folds the parts into the consolidated file and
removes them, so a later run never reads them again. A part of a unit's frame rows is written
before the part holding its unit row (the done record), so an interrupted job loses no
finished unit's rows and a rerun knows what is done. A record may be read twice (a merge or a
consolidation interrupted before its parts were removed, a unit redone by a later run): each
table keeps one row per key, the newest (:data:`KEYS`). ``summary.json`` describes the whole
job (:mod:`jobs.metrics.summary`). The tables' columns are :mod:`jobs.metrics.tables`'.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colorstyle_core import storage
from jobs.metrics.tables import (
    FAILURE_SCHEMA,
    FRAME_SCHEMA,
    QUALITY_SCHEMA,
    UNIT_SCHEMA,
    VIDEO_SCHEMA,
    Row,
    to_table,
)

SCHEMAS: dict[str, pa.Schema] = {"frames": FRAME_SCHEMA, "units": UNIT_SCHEMA, "videos": VIDEO_SCHEMA,
                                 "quality": QUALITY_SCHEMA, "failures": FAILURE_SCHEMA}
KINDS = tuple(SCHEMAS)

KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "frames": (("input_uri", "frame_index"), ("started_at", "run_id")),
    "units": (("unit_id",), ("finished_at", "run_id")),
    "videos": (("video_key",), ("finished_at", "run_id")),
    "quality": (("input_uri",), ("run_id",)),
}
"""Per table: the key that names one row, and what makes a row newer (ties: the later one read)."""

READ_THREADS = 32
"""Parts read at once from a filesystem without batched reads of its own."""


def part_name(run_id: str, level: int, seq: int) -> str:
    """A part's file name: sorted by run, then written order within a level."""
    return f"{run_id}-L{level}-{seq:07d}.parquet"


def to_parquet(rows: Sequence[Row], schema: pa.Schema) -> bytes:
    """Typed rows as Parquet bytes (zstd)."""
    return table_bytes(to_table(rows, schema))


def table_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def parquet_as(data: bytes, schema: pa.Schema) -> pa.Table:
    """Parquet bytes read as ``schema``: only its columns are read, and a column the file does not have (written
    by an earlier version, before the column existed) comes back as nulls.

    Raises:
        pyarrow.ArrowInvalid: not Parquet, or a column that cannot be cast.
    """
    source = pq.ParquetFile(io.BytesIO(data))
    present = set(source.schema_arrow.names)
    table = source.read(columns=[f.name for f in schema if f.name in present])
    columns = [table[f.name] if f.name in present else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=pa.schema([pa.field(f.name, c.type) for f, c in zip(schema, columns)])
                                ).cast(schema)


def read_table(uri: str, schema: pa.Schema, storage_options=None) -> pa.Table:
    """A Parquet file, or an empty table of ``schema`` if it does not exist."""
    try:
        data = storage.read_bytes(uri, storage_options)
    except FileNotFoundError:
        return schema.empty_table()
    return parquet_as(data, schema)


def cat_many(fs, paths: Sequence[str]) -> list[bytes]:
    """The bytes of many files at once, in order (fsspec's batched ``cat`` where the filesystem is asynchronous,
    e.g. S3, GCS; a thread pool elsewhere).

    Raises:
        FileNotFoundError: a file is missing.
    """
    if not paths:
        return []
    if getattr(fs, "async_impl", False):
        found = fs.cat(list(paths), on_error="raise")
        return [found[p] if p in found else found[fs._strip_protocol(p)] for p in paths]
    with ThreadPoolExecutor(min(READ_THREADS, len(paths))) as pool:
        return list(pool.map(fs.cat_file, paths))


def newest(table: pa.Table, key: Sequence[str], order: Sequence[str]) -> pa.Table:
    """One row per ``key``: the greatest by ``order`` (ties: the later row), in the table's own row order.

    Vectorised (Arrow sorts and compares whole columns), so a million rows take about a second.
    """
    n = table.num_rows
    if n == 0:
        return table
    position = pa.array(np.arange(n, dtype=np.int64))
    keyed = table.select([*key, *order]).append_column("__row", position)
    ordering = [(k, "ascending") for k in key] + [(o, "descending") for o in order] + [("__row", "descending")]
    sorted_rows = keyed.take(pc.sort_indices(keyed, sort_keys=ordering))
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    for k in key:  # a key's group starts wherever any key column differs from the row before (null = null)
        column = sorted_rows[k].combine_chunks()
        a, b = column.slice(1), column.slice(0, n - 1)
        differs = pc.not_equal(a, b).fill_null(True).to_numpy(zero_copy_only=False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        starts[1:] |= differs & ~both_null
    keep = np.sort(sorted_rows["__row"].to_numpy()[starts])
    return table if keep.size == n else table.take(pa.array(keep))


def newest_per_frame(frames: pa.Table) -> pa.Table:
    """One row per ``(input_uri, frame_index)``: the one that started last (a frame redone by a later run)."""
    key, order = KEYS["frames"]
    return newest(frames, key, order)


@dataclass
class MetricsStore:
    """Reads and writes a job's metrics under ``prefix``."""

    prefix: str
    job_id: str
    run_id: str
    storage_options: dict | None = None

    def _uri(self, *parts: str) -> str:
        return storage.join_under(self.prefix, *parts)

    # ---- writing -------------------------------------------------------------------------------

    def write_part(self, kind: str, name: str, rows: Sequence[Row]) -> None:
        """One part of a table, written atomically."""
        storage.write_bytes_atomic(self._uri("parts", kind, name), to_parquet(rows, SCHEMAS[kind]),
                                   self.storage_options)

    def merge_parts(self, kind: str, names: Sequence[str], merged: str) -> None:
        """Parts of a table merged into one (written before the others are removed: an interruption leaves rows
        twice, never none; readers keep one per key)."""
        fs, root = storage.filesystem(self._uri("parts", kind), self.storage_options)
        paths = [f"{root.rstrip('/')}/{n}" for n in names]
        with storage.errors(self._uri("parts", kind), "merge"):
            table = pa.concat_tables(parquet_as(b, SCHEMAS[kind]) for b in cat_many(fs, paths))
        storage.write_bytes_atomic(self._uri("parts", kind, merged), table_bytes(table), self.storage_options)
        with storage.errors(self._uri("parts", kind), "remove"):
            fs.rm(paths)

    def check_writable(self) -> None:
        """Write and remove a probe file.

        Raises:
            storage.StorageError: naming the prefix, when it cannot be written.
        """
        probe = self._uri(f".write-test-{self.run_id}")
        storage.write_bytes_atomic(probe, b"ok", self.storage_options)
        fs, path = storage.filesystem(probe, self.storage_options)
        fs.rm_file(path)

    def write_run_summary(self, summary: dict) -> None:
        """This run's own figures, kept under ``runs/<run id>/``."""
        storage.write_bytes_atomic(self._uri("runs", self.run_id, "summary.json"),
                                   json.dumps(summary, indent=2, default=str).encode(), self.storage_options)

    # ---- reading -------------------------------------------------------------------------------

    def _parts(self, kind: str) -> tuple[object, list[str]]:
        uri = self._uri("parts", kind)
        fs, root = storage.filesystem(uri, self.storage_options)
        try:
            with storage.errors(uri, "list"):
                return fs, sorted(p for p in fs.find(root) if p.endswith(".parquet"))
        except FileNotFoundError:
            return fs, []

    def table(self, kind: str, columns: Sequence[str] | None = None, *, run_only: bool = False) -> pa.Table:
        """Every row of a table: the consolidated file and the parts since, read concurrently, one row per key.

        Args:
            kind: ``frames``, ``units``, ``videos``, ``quality`` or ``failures``.
            columns: read only these (and the key's, to keep one row per key).
            run_only: only the parts of this run (failures: a run's own problems).
        """
        schema = SCHEMAS[kind]
        key, order = KEYS.get(kind, ((), ()))
        wanted = None if columns is None else list(dict.fromkeys([*columns, *key, *order]))
        fs, paths = self._parts(kind)
        if run_only:
            paths = [p for p in paths if p.rsplit("/", 1)[-1].startswith(self.run_id + "-")]
        base_fs, base = storage.filesystem(self._uri(f"{kind}.parquet"), self.storage_options)
        with storage.errors(self._uri("parts", kind), "read"):
            blobs = cat_many(fs, paths)
            if not run_only:
                try:
                    blobs.insert(0, base_fs.cat_file(base))
                except FileNotFoundError:
                    pass
        target = schema if wanted is None else pa.schema([schema.field(c) for c in wanted])
        tables = [parquet_as(b, target) for b in blobs]
        table = pa.concat_tables(tables) if tables else target.empty_table()
        return newest(table, key, order) if key else table

    def frames(self) -> pa.Table:
        """Every frame row of the job, one per ``(input_uri, frame_index)``: the newest attempt wins."""
        return self.table("frames")

    def units(self) -> pa.Table:
        return self.table("units")

    def videos(self) -> pa.Table:
        return self.table("videos")

    def quality(self) -> pa.Table:
        return self.table("quality")

    def run_summaries(self) -> list[dict]:
        """Every recorded run's figures, oldest first (run ids sort by time)."""
        uri = self._uri("runs")
        try:
            with storage.errors(uri, "list"):
                fs, root = storage.filesystem(uri, self.storage_options)
                paths = sorted(p for p in fs.find(root) if p.endswith("/summary.json"))
                return [json.loads(b) for b in cat_many(fs, paths)]
        except FileNotFoundError:
            return []

    def job_summary(self) -> dict | None:
        """The consolidated ``summary.json``, or ``None`` when there is none (yet)."""
        try:
            return json.loads(storage.read_bytes(self._uri("summary.json"), self.storage_options))
        except (FileNotFoundError, ValueError):
            return None

    # ---- the end of a run ------------------------------------------------------------------------

    def consolidate(self, summary: dict) -> dict[str, str]:
        """Fold every table's parts into its consolidated file (then remove them), write this run's failures and
        the job's ``summary.json``; returns their URIs.

        The consolidated files are written before any part is removed: an interruption leaves a row in both,
        which the readers keep once.
        """
        written, consolidated = {}, []
        for kind in KINDS:
            run_only = kind == "failures"  # the consolidated failures are the last run's, as its summary
            table = self.table(kind, run_only=run_only)
            uri = self._uri(f"{kind}.parquet")
            storage.write_bytes_atomic(uri, table_bytes(table), self.storage_options)
            if run_only:
                storage.write_bytes_atomic(self._uri("runs", self.run_id, "failures.parquet"), table_bytes(table),
                                           self.storage_options)
            written[kind] = uri
            consolidated.append(kind)
        uri = self._uri("summary.json")
        storage.write_bytes_atomic(uri, json.dumps(summary, indent=2, default=str).encode(), self.storage_options)
        written["summary"] = uri
        for kind in consolidated:
            fs, paths = self._parts(kind)
            if kind == "failures":
                paths = [p for p in paths if p.rsplit("/", 1)[-1].startswith(self.run_id + "-")]
            if paths:
                with storage.errors(self._uri("parts", kind), "remove"):
                    fs.rm(paths)
        return written
