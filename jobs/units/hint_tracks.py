"""Hint tracks: a video's keyframe hints carried through its shots, as a work unit before its frame ranges
(``deepexemplar``: the film's scene cuts, which end each reference keyframe's reach).

Done once per video, on an actor: the keyframes' points follow the optical flow forward and
backward to the next keyframe or scene cut (:func:`colorstyle_core.keyframes.propagate`), and
every frame's hints are written to staging (Parquet). The video's ranges then read their
frames' hints (:func:`range_hints`), so a range knows the hints that reach it from a keyframe
in an earlier range, and the hints are the same on both sides of every seam.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from colorstyle_core import color, storage
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.exemplar import scene_cuts
from colorstyle_core.hints import (
    ColorHints,
    HintsError,
    HintsFile,
    keyframe_hints,
    keyframe_points,
    parse_hints,
    reference_at,
)
from colorstyle_core.imageio import frame_tensor
from colorstyle_core.keyframes import propagate
from colorstyle_core.sequences import input_frames
from colorstyle_core.video import VideoInfo
from jobs.units.base import UnitResult
from jobs.units.context import UnitContext

log = logging.getLogger(__name__)

HINT_TRACK_SCHEMA = pa.schema([
    ("frame", pa.int64()), ("y", pa.float32()), ("x", pa.float32()), ("a", pa.float32()), ("b", pa.float32()),
    ("weight", pa.float32()), ("keyframe", pa.int64()), ("patch", pa.int32()),
])
"""A video's keyframe hints carried through its shots: one row per hint point per frame."""

CUTS_SCHEMA = pa.schema([("frame", pa.int64())])
"""``deepexemplar``: the frames of a film that start a new shot (its track's output instead of carried hints)."""


@dataclass(frozen=True)
class VideoHintsRef:
    """Where a video's keyframe hints are: the restorer's file and, once carried through
    the shots by its :class:`HintTrack`, the hints of every frame.

    Attributes:
        source_uri: the hints file (``{"keyframes": [...]}``).
        tracks_uri: the carried hints (Parquet: frame, y, x, a, b, weight, keyframe), in staging.
        track_unit_id: the :class:`HintTrack` that writes ``tracks_uri``.
    """

    source_uri: str
    tracks_uri: str
    track_unit_id: str


@dataclass(frozen=True)
class HintTrack:
    """A work unit that carries a video's keyframe hints through its shots (before its frame ranges).

    Attributes:
        unit_id: stable id (``hints-<video key>``).
        video_key, video_uri: the video.
        info: the probed video.
        start, stop: the frames processed.
        hints: the hints file and where the carried hints go.
        cut_threshold: scene-cut score (the colour step's temporal setting, else the default).
    """

    unit_id: str
    video_key: str
    video_uri: str
    info: VideoInfo
    start: int
    stop: int
    hints: VideoHintsRef
    cut_threshold: float
    kind: ClassVar[str] = "hints"

    @property
    def frames(self) -> int:
        return 0  # writes no frames; its video's ranges do

    @property
    def input_uris(self) -> tuple[str, ...]:
        return (self.video_uri,)

    @property
    def after(self) -> None:
        return None


class HintTracks:
    """The handler of hint tracks on one actor."""

    def __init__(self, ctx: UnitContext):
        self.ctx = ctx

    def process(self, unit: HintTrack, attempt: int, submitted_at: float,
                give_up: Callable[[], None] = lambda: None) -> UnitResult:
        """Carry a video's keyframe hints through its shots and write every frame's hints (Parquet) to staging;
        for a ``deepexemplar`` job, find the film's scene cuts (:meth:`reference_cuts`) and write them instead.

        Raises:
            HintsError: keyframes labelled as one shot with a scene cut between them; deepexemplar: a shot no
                reference reaches (permanent).
            VideoError: the video cannot be decoded.
        """
        ctx = self.ctx
        started = time.time()
        opts = ctx.spec.storage_options
        source = parse_hints(storage.read_bytes(unit.hints.source_uri, opts).decode("utf-8"), unit.hints.source_uri)
        patches = {k.frame: k.patch for k in source.keyframes}

        def read(start: int, stop: int) -> Iterator[tuple[int, torch.Tensor]]:
            with input_frames(unit.video_uri, unit.info, start, stop, opts) as frames:
                for index, rgb in frames:
                    yield index, color.rgb_to_l(frame_tensor(rgb))

        if ctx.spec.pipeline.colorize is not None and \
                COLORIZERS.get(ctx.spec.pipeline.colorize.model).takes_reference:
            self._write(unit, [{"frame": c} for c in self.reference_cuts(unit, source, read(unit.start, unit.stop))],
                        CUTS_SCHEMA)
            return UnitResult(unit.unit_id, (), (), ctx.actor, started, time.time())

        points = {k.frame: keyframe_points(k, *ctx.keyframe_images(k),
                                           lightness=next(read(k.frame, k.frame + 1))[1] if k.image else None)
                  for k in source.keyframes}  # colours sampled from a keyframe image must exist at the film's L

        carried = propagate(read, source.keyframes, unit.start, unit.stop, points_of=lambda k: points[k.frame],
                            cut_threshold=unit.cut_threshold, name=unit.hints.source_uri)
        rows = [{"frame": f, "y": h.y, "x": h.x, "a": h.a, "b": h.b, "weight": h.weight, "keyframe": h.keyframe,
                 "patch": patches[h.keyframe]} for f, hs in sorted(carried.hints.items()) for h in hs]
        self._write(unit, rows, HINT_TRACK_SCHEMA)
        log.info("%s: keyframes %s carried over %d frames (scene cuts at %s)", unit.video_uri,
                 [k.frame for k in source.keyframes], len(carried.hints), carried.cuts or "none")
        return UnitResult(unit.unit_id, (), (), ctx.actor, started, time.time())

    def reference_cuts(self, unit: HintTrack, source: HintsFile, lightness: Iterable[tuple[int, torch.Tensor]]
                       ) -> list[int]:
        """``deepexemplar``: the film's scene cuts as its chains find them (:func:`colorstyle_core.exemplar.scene_cuts`
        over every frame's L), which end the reach of each reference keyframe.

        Raises:
            HintsError: a shot that no reference keyframe starts while the job has no reference of its own (names
                the frames where those shots start).
        """
        ctx = self.ctx
        cuts = scene_cuts(ctx.pipeline.colorizer, lightness)  # type: ignore[arg-type]
        keyframes = [(k.frame, k.reference) for k in source.keyframes if k.reference]
        orphans = [c for c in cuts if reference_at(keyframes, c, cuts) is None]
        if orphans and not (ctx.spec.pipeline.colorize and ctx.spec.pipeline.colorize.reference):
            raise HintsError(f"{unit.hints.source_uri}: the shots starting at frames {orphans} have no reference (a "
                             "reference applies up to the next scene cut): give each a keyframe with a reference, or "
                             "give pipeline.colorize.reference")
        log.info("%s: scene cuts at %s; references from %s", unit.video_uri, cuts or "none", keyframes)
        return cuts

    def _write(self, unit: HintTrack, rows: list[dict], schema: pa.Schema) -> None:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, compression="zstd")
        storage.write_bytes_atomic(unit.hints.tracks_uri, buf.getvalue(), self.ctx.spec.output_storage_options)


def range_cuts(unit: RangeWithHints, ctx: UnitContext) -> tuple[int, ...]:
    """``deepexemplar``: the scene cuts of a range's film (all of them: a keyframe's reach may start in an earlier
    range), as its track wrote them."""
    assert unit.hints is not None
    table = pq.read_table(io.BytesIO(storage.read_bytes(unit.hints.tracks_uri, ctx.spec.output_storage_options)))
    return tuple(table["frame"].to_pylist())


class RangeWithHints(Protocol):
    """What :func:`range_hints` reads of a frame range."""

    read_start: int
    stop: int
    hints: VideoHintsRef | None


def range_hints(unit: RangeWithHints, ctx: UnitContext) -> dict[int, ColorHints]:
    """The hints of a range's frames: read from its video's carried hints; a keyframe with a colour
    image and a mask gives its dense hint on its own frame."""
    assert unit.hints is not None
    table = pq.read_table(io.BytesIO(storage.read_bytes(unit.hints.tracks_uri, ctx.spec.output_storage_options)))
    rows = table.filter(pc.and_(pc.greater_equal(table["frame"], unit.read_start),
                                pc.less(table["frame"], unit.stop))).to_pylist()
    source = parse_hints(storage.read_bytes(unit.hints.source_uri, ctx.spec.storage_options).decode("utf-8"),
                         unit.hints.source_uri)
    by_frame: dict[int, list[dict]] = {}
    for r in rows:
        by_frame.setdefault(r["frame"], []).append(r)
    out = {}
    for frame, points in by_frame.items():
        out[frame] = ColorHints(points=tuple((r["y"], r["x"], r["a"], r["b"]) for r in points),
                                patch=max(r["patch"] for r in points),
                                weights=tuple(r["weight"] for r in points))
    for keyframe in source.keyframes:
        if keyframe.mask and unit.read_start <= keyframe.frame < unit.stop:
            out[keyframe.frame] = keyframe_hints(keyframe, *ctx.keyframe_images(keyframe))
    return out
