"""Planning at archive scale: units stream out while the inputs are listed, and films are planned from their
header and index, never read in full by the driver."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from media import avi_with_wrong_frame_count, long_mp4
from PIL import Image

from jobs.manifest import parse_manifest
from jobs.plan import ProbeNeeded, Tally, plan_job, plan_stream
from jobs.units.images import ImageShard


class CountingFileSystem(LocalFileSystem):
    """Local files under the ``counting://`` protocol, counting every byte read through them."""

    protocol = "counting"
    bytes_read = 0

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        read = f.read

        def counted(*args):
            data = read(*args)
            CountingFileSystem.bytes_read += len(data)
            return data

        f.read = counted
        return f


fsspec.register_implementation("counting", CountingFileSystem, clobber=True)


def _manifest(inputs: str, out: Path, extra: str = ""):
    return parse_manifest(textwrap.dedent(f"""
        inputs: {inputs}
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{}}}}
        execution: {{images_per_shard: 4, frames_per_range: 240}}
        {extra}
    """), "plan.yaml")


def test_planning_reads_a_films_header_and_index_not_the_film(shared, tmp_path):
    film = tmp_path / "reel.mp4"
    frames = long_mp4(shared / "data" / "video" / "dev_kenburns_gray.mp4", film, 100)
    assert film.stat().st_size > 30e6
    CountingFileSystem.bytes_read = 0
    plan = plan_job(_manifest(f"[counting://{film}]", tmp_path / "out"))
    assert CountingFileSystem.bytes_read < 2e6  # a few hundred KB of header and sample table, of 33 MB
    assert plan.videos[0].info.frame_count == frames == 7200 and not plan.videos[0].info.estimated
    assert sum(r.frames for r in plan.ranges) == frames and len(plan.ranges) == 30


def test_a_film_without_an_index_is_probed_elsewhere_and_planned_by_its_probe(shared, tmp_path):
    avi = tmp_path / "scan.avi"
    real = avi_with_wrong_frame_count(shared / "data" / "video" / "dev_kenburns_gray.mp4", avi, claimed=50)
    manifest = _manifest(f"[{avi}]", tmp_path / "out")
    items = list(plan_stream(manifest))
    assert [type(i) for i in items] == [ProbeNeeded]  # the driver does not demux it: the cluster does
    plan = plan_job(manifest)  # probed here (tests, benchmarks): the real count, not the header's 50
    assert plan.videos[0].info.frame_count == real == 72 and sum(r.frames for r in plan.ranges) == 72


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_units_stream_out_while_a_local_listing_goes_on(tmp_path):
    data = _png()
    for folder in range(20):
        (tmp_path / "in" / f"box{folder:02d}").mkdir(parents=True)
        for i in range(100):
            (tmp_path / "in" / f"box{folder:02d}" / f"p{i:03d}.png").write_bytes(data)
    tally = Tally()
    stream = plan_stream(_manifest(f"[{tmp_path / 'in'}/]", tmp_path / "out"), tally=tally)
    first = next(stream)
    assert isinstance(first, ImageShard) and len(first.items) == 4
    assert tally.inputs_found == 4 and not tally.listing_done  # of 2000: the rest is still to be listed
    rest = list(stream)
    assert tally.listing_done and tally.inputs_found == 2000 and sum(len(s.items) for s in [first, *rest]) == 2000


def test_units_stream_out_while_an_object_store_listing_pages_on(s3, tmp_path):
    prefix, opts = s3
    fs = fsspec.filesystem("s3", **opts)
    data = _png()
    fs.pipe({f"{prefix.removeprefix('s3://')}/archive/p{i:05d}.png": data for i in range(2100)})
    fs.pipe({f"{prefix.removeprefix('s3://')}/{name}": data for name in ("archive-2/x.png", "other/y.png")})
    endpoint = opts["client_kwargs"]["endpoint_url"]
    manifest = parse_manifest(textwrap.dedent(f"""
        inputs: [{prefix}/archive/]
        storage_options: {{key: testing, secret: testing, client_kwargs: {{endpoint_url: "{endpoint}"}}}}
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{}}}}
        execution: {{images_per_shard: 16}}
    """), "plan.yaml")
    tally = Tally()
    stream = plan_stream(manifest, tally=tally)
    assert isinstance(next(stream), ImageShard) and tally.inputs_found == 16  # from the first page of 1000 keys
    shards = list(stream)
    assert tally.inputs_found == 2100 and len(shards) == 2100 // 16 + 1 - 1  # only the prefix's own keys
    assert not tally.problems


@pytest.mark.parametrize("entries", [0, 3])
def test_a_list_file_streams_its_lines(tmp_path, entries):
    data = _png()
    (tmp_path / "in").mkdir()
    for i in range(entries):
        (tmp_path / "in" / f"p{i}.png").write_bytes(data)
    (tmp_path / "list.txt").write_text("# scans\n" + "".join(f"in/p{i}.png\n" for i in range(entries)))
    plan = plan_job(_manifest(f"[{{list: {tmp_path / 'list.txt'}}}]", tmp_path / "out"))
    if entries:
        assert [i.rel for s in plan.shards for i in s.items] == ["p0.png", "p1.png", "p2.png"]
    else:
        assert [p.error_type for p in plan.problems] == ["EmptyInput"]
