"""Typed metrics rows: each table's rows are built through one dataclass that fits its schema exactly."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from colorstyle_core.quality import ImageQuality
from colorstyle_core.timing import Stage
from jobs.metrics.tables import (
    FAILURE_SCHEMA,
    FRAME_SCHEMA,
    QUALITY_SCHEMA,
    UNIT_SCHEMA,
    VIDEO_SCHEMA,
    ConsistencyFigures,
    FailureRow,
    FrameRow,
    QualityRow,
    UnitRow,
    VideoRow,
    to_table,
)

STAGES = {s: 0.5 for s in Stage}


def _rows():
    frame = FrameRow("job", "run", "unit", "video", "in.mp4", "seg.mkv", 3, "actor-0", "host", "0", "cpu", 64, 48,
                     4, "eccv16", False, 0.1, STAGES, 1_700_000_000_000)
    unit = UnitRow("job", "run", "unit", "video", 1, 24, 0, 1, "actor-0", "host", "0", 0.1, 9.0, STAGES,
                   1_700_000_000_000, 1_700_000_009_000, False)
    video = VideoRow("job", "run", "key", "in.mp4", "out.mp4", 24, "copied", 1.5, 1_700_000_010_000,
                     ConsistencyFigures(0.001, 0.002, 0.0009, [0.001] * 23, [12], []))
    plain_video = VideoRow("job", "run", "key", "in.mp4", "out.mp4", 24, "none", 1.5, 1_700_000_010_000)
    quality = QualityRow("job", "run", "unit", "a.jpg", "a.png", "ref/a.jpg", ImageQuality(*[1.0] * 6),
                         ImageQuality(*[1.0] * 6), "d.abs.png", "d.png")
    failure = FailureRow("job", "run", "a.jpg", "unit", "ImageDecodeError", "a.jpg: empty file", 1)
    return [(frame, FRAME_SCHEMA), (unit, UNIT_SCHEMA), (video, VIDEO_SCHEMA), (plain_video, VIDEO_SCHEMA),
            (quality, QUALITY_SCHEMA), (failure, FAILURE_SCHEMA)]


@pytest.mark.parametrize("row,schema", _rows(), ids=lambda v: type(v).__name__)
def test_every_row_type_fills_exactly_its_schema(row, schema):
    assert set(row.record()) == set(schema.names)
    table = to_table([row], schema)
    assert table.schema.equals(schema) and table.num_rows == 1


def test_stage_seconds_become_columns_and_their_total():
    frame = _rows()[0][0]
    record = frame.record()
    assert all(record[f"{s.value}_s"] == 0.5 for s in Stage)
    assert record["total_s"] == pytest.approx(0.5 * len(Stage))
    assert "total_s" not in _rows()[1][0].record()  # the unit table has per-stage sums only


def test_a_misspelt_or_missing_column_fails_loudly():
    with pytest.raises(TypeError):
        FailureRow("job", "run", "a.jpg", "unit", "Err", "message", 1, recorded_att=0)  # type: ignore[call-arg]

    @dataclass(frozen=True)
    class Misspelt(FailureRow):
        mesage: str = "typo"

    with pytest.raises(ValueError, match="unknown columns \\['mesage'\\]"):
        to_table([Misspelt("job", "run", "a.jpg", "unit", "Err", "m", 1)], FAILURE_SCHEMA)
    with pytest.raises(ValueError, match="missing"):
        to_table([_rows()[0][0]], UNIT_SCHEMA)  # a frame row is not a unit row
