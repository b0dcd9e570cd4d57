"""The job's metrics tables: one typed row class per table, its Arrow schema derived from it.

Every row is built through its dataclass (:class:`FrameRow`, :class:`UnitRow`,
:class:`VideoRow`, :class:`QualityRow`, :class:`FailureRow`); each field says its column
(:func:`column`) or the columns it spreads into (the stages' seconds, a video's consistency
figures, an image's quality against its ground truth), so a table's columns are declared
once. :func:`to_table` refuses a row whose columns differ from its schema. Stage names come
from :class:`colorstyle_core.timing.Stage`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import pyarrow as pa

from colorstyle_core.quality import ImageQuality
from colorstyle_core.timing import Seconds, Stage

STAGE_COLUMNS = tuple(f"{s.value}_s" for s in Stage)

Column = tuple[str, pa.DataType, Callable[[Any], Any]]
"""``(column name, Arrow type, value of the column from the field's value)``."""

_MS = pa.timestamp("ms", tz="UTC")


def column(kind: pa.DataType, **default: Any) -> Any:
    """A dataclass field that is one column of type ``kind`` (``default=`` / ``default_factory=`` as for ``field``)."""
    return field(metadata={"columns": lambda name: [(name, kind, lambda v: v)]}, **default)


def stage_columns(*, total: bool) -> Any:
    """A :data:`~colorstyle_core.timing.Seconds` field as one float64 column per stage (``<stage>_s``), and the
    sum of them (``total_s``) when ``total``."""

    def columns(_: str) -> list[Column]:
        out: list[Column] = [(f"{s.value}_s", pa.float64(), lambda v, s=s: float(v.get(s, 0.0))) for s in Stage]
        if total:
            out.append(("total_s", pa.float64(), lambda v: float(sum(v.get(s, 0.0) for s in Stage))))
        return out

    return field(metadata={"columns": columns})


def spread(kinds: Sequence[tuple[str, pa.DataType]], *, names: dict[str, str] | None = None, **default: Any) -> Any:
    """A field holding a dataclass whose attributes (``kinds``: ``(attribute, Arrow type)``) are columns of
    their own, named as the attributes or as ``names`` says; ``None`` gives nulls."""

    def columns(_: str) -> list[Column]:
        return [((names or {}).get(attr, attr), kind, lambda v, a=attr: None if v is None else getattr(v, a))
                for attr, kind in kinds]

    return field(metadata={"columns": columns}, **default)


def _field_columns(f: dataclasses.Field) -> list[Column]:
    """The columns of one field (a field declared without :func:`column` is a column of its own name, no type)."""
    make = f.metadata.get("columns")
    return make(f.name) if make is not None else [(f.name, pa.null(), lambda v: v)]


def _columns(row_type: type) -> list[Column]:
    return [c for f in fields(row_type) for c in _field_columns(f)]


def schema_of(row_type: type) -> pa.Schema:
    """The Arrow schema of a row class: its fields' columns, in order."""
    return pa.schema([(name, kind) for name, kind, _ in _columns(row_type)])


class Row:
    """A typed metrics row; :meth:`record` gives exactly its table's columns (:attr:`SCHEMA`)."""

    SCHEMA: ClassVar[pa.Schema]

    def record(self) -> dict[str, Any]:
        """The row as ``{column: value}`` for its schema (nested figures spread)."""
        return {name: get(getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                for name, _, get in _field_columns(f)}


def table_row(cls: type) -> type:
    """Class decorator: a frozen dataclass row whose :attr:`Row.SCHEMA` is derived from its fields."""
    cls = dataclass(frozen=True)(cls)
    cls.SCHEMA = schema_of(cls)
    return cls


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class ConsistencyFigures:
    """Temporal consistency and colour of one output video (``metrics.video_consistency``;
    :func:`colorstyle_core.video_metrics.measure_consistency`)."""

    e_warp: float  # warping error, scene cuts excluded
    e_warp_seams: float  # at pairs straddling frame-range seams
    e_warp_inside: float  # at the other pairs
    e_warp_pairs: list[float]  # per consecutive pair (NaN at cuts)
    seams: list[int]  # first frame index of every range after the first
    scene_cuts: list[int]
    cdc: float = math.nan  # colour distribution consistency (TCVC), every pair
    cdc_without_cuts: float = math.nan  # the same, pairs straddling a scene cut left out
    colourfulness: float = math.nan  # mean per frame (Hasler & Suesstrunk 2003)
    input_cdc: float = math.nan  # the input's: what the content alone changes
    input_colourfulness: float = math.nan

    COLUMNS: ClassVar[tuple[tuple[str, pa.DataType], ...]] = (
        ("e_warp", pa.float64()), ("e_warp_seams", pa.float64()), ("e_warp_inside", pa.float64()),
        ("e_warp_pairs", pa.list_(pa.float32())), ("seams", pa.list_(pa.int64())), ("scene_cuts", pa.list_(pa.int64())),
        ("cdc", pa.float64()), ("cdc_without_cuts", pa.float64()), ("colourfulness", pa.float64()),
        ("input_cdc", pa.float64()), ("input_colourfulness", pa.float64()),
    )


_QUALITY = (("psnr", pa.float64()), ("ssim", pa.float64()), ("ab_error", pa.float64()),
            ("colorfulness_pred", pa.float64()), ("colorfulness_ref", pa.float64()),
            ("delta_colorfulness", pa.float64()))
""":class:`~colorstyle_core.quality.ImageQuality`'s figures as columns: PSNR in dB (RGB, 8-bit range, inf for
identical images), SSIM (RGB, scikit-image defaults), mean ab distance in CIE Lab, colourfulness (Hasler &
Suesstrunk 2003, RGB on 0..255) of the output and of the truth, and their difference (output - truth)."""
assert tuple(a for a, _ in _QUALITY) == tuple(f.name for f in dataclasses.fields(ImageQuality))


@table_row
class FrameRow(Row):
    """One written image or video frame. Batched stages are shared evenly by the batch's frames."""

    job_id: str = column(pa.string())
    run_id: str = column(pa.string())
    unit_id: str = column(pa.string())
    kind: str = column(pa.string())  # image | video
    input_uri: str = column(pa.string())
    output_uri: str = column(pa.string())
    frame_index: int = column(pa.int64())  # 0 for images
    actor: str = column(pa.string())
    node: str = column(pa.string())
    gpu_id: str = column(pa.string())
    device: str = column(pa.string())
    width: int = column(pa.int32())
    height: int = column(pa.int32())
    batch_size: int = column(pa.int32())
    weights: str = column(pa.string())  # provenance of every model used; "UNTRAINED" for generated weights
    untrained: bool = column(pa.bool_())
    queue_wait_s: float = column(pa.float64())
    stages: Seconds = stage_columns(total=True)  # <stage>_s and their sum total_s
    started_at: int = column(_MS)
    loss_total: list[float] = column(pa.list_(pa.float32()), default_factory=list)  # stylization loss per step
    loss_content: list[float] = column(pa.list_(pa.float32()), default_factory=list)
    loss_style: list[float] = column(pa.list_(pa.float32()), default_factory=list)
    loss_tv: list[float] = column(pa.list_(pa.float32()), default_factory=list)
    chain_reset: bool | None = column(pa.bool_(), default=None)  # temporal chain (re)started: a shot's first frame
    cut_score: float | None = column(pa.float32(), default=None)  # scene-cut score against the previous frame
    flow_trusted: float | None = column(pa.float32(), default=None)  # share of pixels the flow mask trusted
    perframe_diff: float | None = column(pa.float32(), default=None)  # mean |RGB| to the per-frame colours
    colorized_uri: str | None = column(pa.string(), default=None)  # before stylization (output.save_colorized)
    hint_points: int | None = column(pa.int32(), default=None)  # hint points on this frame (null: no hints)


@table_row
class UnitRow(Row):
    """One finished work unit; ``stages`` are its frames' sums."""

    job_id: str = column(pa.string())
    run_id: str = column(pa.string())
    unit_id: str = column(pa.string())
    kind: str = column(pa.string())
    inputs: int = column(pa.int32())
    frames: int = column(pa.int32())
    failed: int = column(pa.int32())
    attempt: int = column(pa.int32())
    actor: str = column(pa.string())
    node: str = column(pa.string())
    gpu_id: str = column(pa.string())
    queue_wait_s: float = column(pa.float64())
    wall_s: float = column(pa.float64())
    stages: Seconds = stage_columns(total=False)
    started_at: int = column(_MS)
    finished_at: int = column(_MS)
    untrained: bool = column(pa.bool_())
    peak_rss_mb: float | None = column(pa.float64(), default=None)  # the actor's peak resident memory in the unit


@table_row
class VideoRow(Row):
    """One assembled video."""

    job_id: str = column(pa.string())
    run_id: str = column(pa.string())
    video_key: str = column(pa.string())
    input_uri: str = column(pa.string())
    output_uri: str = column(pa.string())
    frames: int = column(pa.int64())
    audio: str = column(pa.string())
    assemble_s: float = column(pa.float64())
    finished_at: int = column(_MS)
    consistency: ConsistencyFigures | None = spread(ConsistencyFigures.COLUMNS, default=None)


@table_row
class QualityRow(Row):
    """One output image compared with its ground truth (``metrics.reference``): the output's figures and those of
    the grey baseline (the truth's L, ab = 0), with the diff maps written beside them."""

    job_id: str = column(pa.string())
    run_id: str = column(pa.string())
    unit_id: str = column(pa.string())
    input_uri: str = column(pa.string())
    output_uri: str = column(pa.string())
    reference_uri: str = column(pa.string())  # the ground truth it was compared with
    output: ImageQuality = spread(_QUALITY)
    baseline: ImageQuality = spread(_QUALITY[:4], names={"psnr": "baseline_psnr", "ssim": "baseline_ssim",
                                                         "ab_error": "baseline_ab_error",
                                                         "colorfulness_pred": "baseline_colorfulness"})
    abs_diff_uri: str = column(pa.string())  # |pred - ref| per pixel (8-bit levels)
    clamped_diff_uri: str = column(pa.string())  # the same clamped at 32 levels and stretched to full scale


@table_row
class FailureRow(Row):
    """One problem: a bad input, or a unit that failed after its retries."""

    job_id: str = column(pa.string())
    run_id: str = column(pa.string())
    input_uri: str = column(pa.string())
    unit_id: str = column(pa.string())
    error_type: str = column(pa.string())
    message: str = column(pa.string())
    attempt: int = column(pa.int32())
    recorded_at: int = column(_MS, default_factory=now_ms)


FRAME_SCHEMA, UNIT_SCHEMA, VIDEO_SCHEMA = FrameRow.SCHEMA, UnitRow.SCHEMA, VideoRow.SCHEMA
QUALITY_SCHEMA, FAILURE_SCHEMA = QualityRow.SCHEMA, FailureRow.SCHEMA


def to_table(rows: Sequence[Row], schema: pa.Schema) -> pa.Table:
    """Typed rows as a table of ``schema``.

    Raises:
        ValueError: a row whose columns are not exactly the schema's (a misspelt or
            missing column never becomes a silent null).
    """
    records = [r.record() for r in rows]
    names = set(schema.names)
    for r in records:
        if set(r) != names:
            raise ValueError(f"metrics row does not fit its table: unknown columns {sorted(set(r) - names)}, "
                             f"missing {sorted(names - set(r))}")
    return pa.Table.from_pylist(records, schema=schema)
