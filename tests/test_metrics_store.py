"""The metrics store at scale: batched parts written off the scheduling loop, compacted as the run goes, read back
concurrently, one row per key, consolidated once."""

from __future__ import annotations

import threading
import time

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colorstyle_core import storage
from colorstyle_core.timing import Stage
from jobs.metrics.store import MetricsStore, cat_many, newest, newest_per_frame
from jobs.metrics.tables import VIDEO_SCHEMA, FailureRow, FrameRow, UnitRow, VideoRow
from jobs.metrics.writer import MetricsWriter

STAGES = {s: 0.1 for s in Stage}


def _frame(unit: str, run: str = "r1", started: int = 1_700_000_000_000, uri: str | None = None) -> FrameRow:
    return FrameRow("job", run, unit, "image", uri or f"in/{unit}.jpg", f"out/{unit}.png", 0, "actor-0", "host", "",
                    "cpu", 8, 8, 1, "w", False, 0.0, STAGES, started)


def _unit(unit: str, run: str = "r1", finished: int = 1_700_000_000_500) -> UnitRow:
    return UnitRow("job", run, unit, "image", 1, 1, 0, 1, "actor-0", "host", "", 0.0, 0.1, STAGES,
                   finished - 100, finished, False)


def _parts(store: MetricsStore, kind: str) -> list[str]:
    fs, root = storage.filesystem(storage.join(store.prefix, "parts", kind))
    return sorted(p for p in (fs.find(root) if fs.exists(root) else []) if p.endswith(".parquet"))


def test_newest_keeps_one_row_per_key_as_the_row_by_row_rule_does():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 200))
        table = pa.table({"input_uri": [str(v) if v else None for v in rng.integers(0, 4, n)],
                          "frame_index": rng.integers(0, 3, n),
                          "started_at": pa.array(rng.integers(0, 4, n), pa.timestamp("ms", tz="UTC")),
                          "run_id": [f"r{v}" for v in rng.integers(0, 2, n)], "row": np.arange(n)})
        best: dict = {}
        rows = table.to_pylist()
        for i, r in enumerate(rows):  # the rule, one row at a time: the greatest (started, run) wins, ties go to the
            key = (r["input_uri"], r["frame_index"])  # later row
            j = best.get(key)
            if j is None or (r["started_at"], r["run_id"]) >= (rows[j]["started_at"], rows[j]["run_id"]):
                best[key] = i
        assert newest_per_frame(table)["row"].to_pylist() == sorted(best.values())
    assert newest(table.slice(0, 0), ["input_uri"], ["run_id"]).num_rows == 0


def test_a_batch_of_units_is_one_part_per_table_and_the_done_records_come_last(tmp_path, monkeypatch):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    written: list[str] = []
    write = store.write_part

    def recording(kind, name, rows):
        written.append(kind)
        write(kind, name, rows)

    monkeypatch.setattr(store, "write_part", recording)
    writer = MetricsWriter(store, max_units=50, max_seconds=60, first_seconds=60)
    for i in range(50):
        writer.add_unit([_frame(f"u{i}")], _unit(f"u{i}"))
    writer.add_video(VideoRow("job", "r1", "v", "in.mp4", "out.mp4", 3, "none", 0.1, 1))
    writer.close()
    assert written[:2] == ["frames", "units"]  # the first 50 units: their frames, then their unit rows
    assert written[2:] == ["videos"] and writer.durable_units == 50
    assert store.units().num_rows == 50 and store.frames().num_rows == 50 and store.videos().num_rows == 1


def test_units_that_come_slowly_are_recorded_within_the_time_limit(tmp_path):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    writer = MetricsWriter(store, max_units=1000, max_seconds=0.3)
    writer.add_unit([_frame("slow")], _unit("slow"))
    deadline = time.time() + 30
    while writer.durable_units < 1 and time.time() < deadline:  # a bound, not a timing: it happens within 0.3 s
        time.sleep(0.05)
    assert writer.durable_units == 1 and "slow" in store.units()["unit_id"].to_pylist()
    writer.close()


def test_parts_are_compacted_as_the_run_goes(tmp_path):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    writer = MetricsWriter(store, max_units=1, max_seconds=60, first_seconds=60, fan_in=4)
    for i in range(64):
        writer.add_unit([_frame(f"u{i}")], _unit(f"u{i}"))
        while writer.durable_units < i + 1:  # one flush per unit: the most parts a run can make
            time.sleep(0.005)
    writer.close()
    parts = _parts(store, "units")
    assert len(parts) <= 3 and writer.max_parts <= 2 * 3 * 4  # 64 flushes, fan-in 4: levels 0..3, < 4 parts each
    assert sorted(store.units()["unit_id"].to_pylist()) == sorted(f"u{i}" for i in range(64))


def test_a_write_that_keeps_failing_stops_the_run_with_its_error(tmp_path, monkeypatch):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    calls = {"n": 0}

    def failing(kind, name, rows):
        calls["n"] += 1
        raise OSError("bucket unreachable (injected)")

    monkeypatch.setattr(store, "write_part", failing)
    monkeypatch.setattr("jobs.metrics.writer.time.sleep", lambda s: None)  # the retries' back-off
    writer = MetricsWriter(store, max_units=1, max_seconds=60, first_seconds=60)
    writer.add_unit([_frame("u")], _unit("u"))
    with pytest.raises(OSError, match="bucket unreachable"):
        writer.close()
    assert calls["n"] == 4  # tried ATTEMPTS times


def test_a_write_that_fails_once_is_retried(tmp_path, monkeypatch):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    write, calls = store.write_part, {"n": 0}

    def flaky(kind, name, rows):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("slow down (injected)")
        write(kind, name, rows)

    monkeypatch.setattr(store, "write_part", flaky)
    monkeypatch.setattr("jobs.metrics.writer.time.sleep", lambda s: None)
    writer = MetricsWriter(store, max_units=1, max_seconds=60, first_seconds=60)
    writer.add_unit([_frame("u")], _unit("u"))
    writer.close()
    assert store.units()["unit_id"].to_pylist() == ["u"]


def test_consolidation_folds_the_parts_in_and_a_later_run_does_not_read_them_again(tmp_path):
    first = MetricsStore(str(tmp_path / "m"), "job", "r1")
    writer = MetricsWriter(first, max_units=4, max_seconds=60, first_seconds=60)
    for i in range(10):
        writer.add_unit([_frame(f"u{i}")], _unit(f"u{i}"))
    writer.add_failures([FailureRow("job", "r1", "bad.jpg", "", "ImageDecodeError", "bad.jpg: empty", 0)])
    writer.close()
    first.consolidate({"frames": 10})
    assert _parts(first, "frames") == [] and _parts(first, "units") == []
    assert first.frames().num_rows == 10 and first.table("failures").num_rows == 1
    second = MetricsStore(str(tmp_path / "m"), "job", "r2")  # redoes u3 (newer), adds u10
    writer = MetricsWriter(second, max_units=100, max_seconds=60, first_seconds=60)
    for i in (3, 10):
        writer.add_unit([_frame(f"u{i}", "r2", started=1_800_000_000_000)], _unit(f"u{i}", "r2", 1_800_000_000_500))
    writer.close()
    frames = second.frames()
    runs = dict(zip(frames["unit_id"].to_pylist(), frames["run_id"].to_pylist()))
    assert frames.num_rows == 11 and runs["u3"] == "r2"
    written = second.consolidate({"frames": 11})
    assert second.table("failures").num_rows == 0  # the consolidated failures are the last run's
    assert storage.exists(written["frames"]) and len(_parts(second, "frames")) == 0


def test_many_parts_are_read_at_once_on_an_object_store(s3):
    prefix, opts = s3
    fs = fsspec.filesystem("s3", **opts)
    paths = [f"{prefix.removeprefix('s3://')}/p{i:03d}" for i in range(40)]
    fs.pipe({p: str(i).encode() for i, p in enumerate(paths)})
    assert cat_many(fs, paths) == [str(i).encode() for i in range(40)]
    local = fsspec.filesystem("file")
    assert cat_many(local, []) == []


def test_the_writer_takes_rows_from_many_threads(tmp_path):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    writer = MetricsWriter(store, max_units=7, max_seconds=0.2)

    def add(k: int) -> None:
        for i in range(25):
            writer.add_unit([_frame(f"t{k}-{i}")], _unit(f"t{k}-{i}"))

    threads = [threading.Thread(target=add, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert store.units().num_rows == 100 and store.frames().num_rows == 100


def test_a_table_written_before_a_column_existed_reads_with_that_column_null(tmp_path):
    store = MetricsStore(str(tmp_path / "m"), "job", "r1")
    store.write_part("videos", "r0-L0-0.parquet", [VideoRow("job", "r0", "v", "in.mp4", "out.mp4", 3, "none", 0.1, 1)])
    fs, root = storage.filesystem(storage.join(store.prefix, "parts", "videos"))
    path = f"{root}/r0-L0-0.parquet"
    old = pq.read_table(path).drop_columns(["cdc", "colourfulness"])  # as an earlier version wrote it
    pq.write_table(old, path)
    videos = store.table("videos")
    assert videos.num_rows == 1 and videos.schema.equals(VIDEO_SCHEMA, check_metadata=False)
    assert videos["cdc"].to_pylist() == [None] and videos["frames"].to_pylist() == [3]
    assert store.table("videos", ["colourfulness"])["colourfulness"].to_pylist() == [None]
