"""Manifests (typed, strict, errors with lines) and planning (listing, cutting, ids)."""

from __future__ import annotations

import shutil

import pytest
from conftest import job_manifest

from jobs.cli import main
from jobs.manifest import parse_manifest
from jobs.manifest_base import ManifestError, is_training
from jobs.plan import DoneState, plan_job, split_ranges, split_shards
from jobs.train.manifest import parse_train_manifest

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


# ---- pure cutting: table tests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "n,per,expected",
    [
        (0, 3, []),
        (1, 3, [(0,)]),
        (3, 3, [(0, 1, 2)]),
        (7, 3, [(0, 1, 2), (3, 4, 5), (6,)]),
        (2, 5, [(0, 1)]),  # k > n
    ],
)
def test_split_shards(n, per, expected):
    assert split_shards(list(range(n)), per) == expected


@pytest.mark.parametrize(
    "start,stop,per,overlap,expected",
    [
        (0, 0, 4, 0, []),
        (0, 10, 4, 0, [(0, 0, 4), (4, 4, 8), (8, 8, 10)]),
        (0, 10, 20, 0, [(0, 0, 10)]),  # k > n
        (5, 12, 3, 0, [(5, 5, 8), (8, 8, 11), (11, 11, 12)]),
        (0, 10, 4, 2, [(0, 0, 4), (2, 4, 8), (6, 8, 10)]),
        (0, 10, 4, 9, [(0, 0, 4), (0, 4, 8), (0, 8, 10)]),  # overlap never reads before start
    ],
)
def test_split_ranges(start, stop, per, overlap, expected):
    ranges = split_ranges(start, stop, per, overlap)
    assert ranges == expected
    written = [i for _, w, s in ranges for i in range(w, s)]
    assert written == list(range(start, stop))  # full coverage, no overlap, in order


def test_split_rejects_bad_sizes():
    with pytest.raises(ValueError):
        split_shards([1], 0)
    with pytest.raises(ValueError):
        split_ranges(0, 10, 0)
    with pytest.raises(ValueError):
        split_ranges(5, 2, 1)


# ---- manifest ----------------------------------------------------------------------------------


def test_unknown_keys_are_named_with_their_line():
    with pytest.raises(ManifestError) as err:
        job_manifest("""
            inputs: [a/]
            output: {prefix: out/}
            pipeline:
              colorize: {model: eccv16}
              stylize:
                styles: [s.jpg]
                stepz: 10
            execution:
              actor: 2
        """, "job.yaml")
    text = str(err.value)
    assert "job.yaml:8: pipeline.stylize.stepz: unknown key" in text
    assert "job.yaml:10: execution.actor: unknown key" in text


@pytest.mark.parametrize(
    "snippet,needle",
    [
        ("pipeline: {}", "needs a 'colorize' or a 'stylize' step"),
        ("pipeline: {colorize: {model: eccv17}}", "pipeline.colorize.model"),
        ("pipeline: {stylize: {styles: [a.jpg, b.jpg], blend: [1]}}", "blend has 1 weights for 2 styles"),
        ("pipeline: {stylize: {styles: [a.jpg], style_layers: [relu9_9]}}", "relu9_9"),
        ("pipeline: {colorize: {model: eccv16, hints: h/}}", "hints need model: siggraph17"),
    ],
)
def test_bad_values_are_explained(snippet, needle):
    with pytest.raises(ManifestError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_manifest(f"inputs: [a/]\noutput: {{prefix: o/}}\n{snippet}\n", "job.yaml")


def test_manifest_is_frozen_and_job_id_is_stable():
    text = "inputs: [a/]\noutput: {prefix: o/}\npipeline: {colorize: {}}\nexecution: {actors: 1}\n"
    m1, m2 = parse_manifest(text), parse_manifest(text.replace("actors: 1", "actors: 4"))
    assert m1.resolved_job_id == m2.resolved_job_id  # execution does not change what the job computes
    assert m1.resolved_job_id != parse_manifest(text.replace("{colorize: {}}", "{colorize: {model: siggraph17}}")
                                                ).resolved_job_id
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        m1.output.prefix = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize("example", sorted((ROOT / "manifests").glob("*.yaml")), ids=lambda p: p.name)
def test_example_manifests_parse(example):
    text = example.read_text()
    if is_training(text):
        parse_train_manifest(text, example.name)
    else:
        parse_manifest(text, example.name)


# ---- listing and planning ------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path, shared):
    src = tmp_path / "archive"
    (src / "1920s" / "street").mkdir(parents=True)
    for stem in ("coffee", "chelsea_cat"):
        shutil.copy(shared / "data" / "gray" / f"{stem}.jpg", src / "1920s" / f"{stem}.jpg")
    shutil.copy(shared / "data" / "gray" / "lighthouse.jpg", src / "1920s" / "street" / "lighthouse.jpg")
    (src / "1920s" / "README.txt").write_text("catalogue")
    shutil.copy(shared / "data" / "video" / "dev_kenburns_gray.mp4", src / "reel.mp4")
    return src


def test_plan_mirrors_relative_paths_and_records_problems(tree, tmp_path):
    (tmp_path / "list.txt").write_text(f"# reels\n{tree / 'reel.mp4'}\n{tree / 'missing.mp4'}\n")
    m = job_manifest(f"""
        inputs:
          - {tree}/1920s/
          - {tree}/nothing/*.jpg
          - {tree}/gone/
          - list: {tmp_path / 'list.txt'}
            frames: {{start: 8, end: 40}}
          - uri: {tree}/reel.mp4
            frames: {{start: 60, end: 90}}
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{}}}}
        execution: {{images_per_shard: 2, frames_per_range: 10}}
    """, "job.yaml")
    plan = plan_job(m)
    outputs = sorted(i.output_uri for s in plan.shards for i in s.items)
    assert outputs == [str(tmp_path / "out" / p) for p in ("chelsea_cat.png", "coffee.png", "street/lighthouse.png")]
    assert [s.frames for s in plan.shards] == [2, 1]
    assert len(plan.videos) == 1 and (plan.videos[0].start, plan.videos[0].stop) == (8, 40)
    assert [(r.write_start, r.stop) for r in plan.ranges] == [(8, 18), (18, 28), (28, 38), (38, 40)]
    kinds = sorted(p.error_type for p in plan.problems)
    assert kinds == ["EmptyInput", "MissingInput", "MissingInput"]  # the glob, the prefix, the listed file
    assert any("README.txt" in i for i in plan.ignored)
    # the second spec names the same reel with frames beyond the end: a problem, not a crash
    m2 = job_manifest(f"""
        inputs: [{{uri: {tree}/reel.mp4, frames: {{start: 60, end: 90}}}}]
        output: {{prefix: {tmp_path / 'out2'}}}
        pipeline: {{colorize: {{}}}}
    """, "job.yaml")
    problems = plan_job(m2).problems
    assert [p.error_type for p in problems] == ["FrameRangeError"] and "72 frames" in problems[0].message


def test_outputs_under_the_input_tree_are_never_read_back(tree):
    m = job_manifest(f"""
        inputs: [{tree}/]
        output: {{prefix: {tree}/colorized}}
        pipeline: {{colorize: {{}}}}
    """, "job.yaml")
    (tree / "colorized").mkdir()
    shutil.copy(tree / "1920s" / "coffee.jpg", tree / "colorized" / "coffee.jpg")
    uris = [i.uri for s in plan_job(m).shards for i in s.items]
    assert not any("/colorized/" in u for u in uris)


def test_output_collisions_are_reported(tree, tmp_path):
    shutil.copy(tree / "1920s" / "coffee.jpg", tree / "1920s" / "coffee.png")
    m = job_manifest(f"""
        inputs: [{tree}/1920s/]
        output: {{prefix: {tmp_path / 'o'}}}
        pipeline: {{colorize: {{}}}}
    """, "job.yaml")
    plan = plan_job(m)
    assert [p.error_type for p in plan.problems] == ["OutputCollision"]


def test_done_units_are_skipped_and_ids_are_stable(tree, tmp_path):
    m = job_manifest(f"""
        inputs: [{tree}/]
        output: {{prefix: {tmp_path / 'o'}}}
        pipeline: {{colorize: {{}}}}
        execution: {{images_per_shard: 8, frames_per_range: 30}}
    """, "job.yaml")
    first = plan_job(m)
    assert plan_job(m).shards == first.shards and plan_job(m).ranges == first.ranges
    done = DoneState(images={first.shards[0].items[0].uri}, ranges={first.ranges[0].unit_id})
    again = plan_job(m, done)
    assert again.skipped_images == 1 and len(again.ranges) == len(first.ranges) - 1
    assert again.videos[0].unit_ids == first.videos[0].unit_ids  # assembly still needs every segment
    assert plan_job(m, DoneState(videos={first.videos[0].key})).ranges == ()


def test_validate_and_dry_run_print_the_plan_without_running(tree, tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text(f"inputs: [{tree}/]\noutput: {{prefix: {tmp_path / 'o'}}}\npipeline: {{colorize: {{}}}}\n")
    assert main(["validate", str(path)]) == 0
    assert main(["run", str(path), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "inputs found: 4" in err and "work units:" in err and "actors: 1" in err
    assert not (tmp_path / "o").exists()
    path.write_text(path.read_text() + "colourise: true\n")
    assert main(["validate", str(path)]) == 2
    assert "job.yaml:4: colourise: unknown key" in capsys.readouterr().err
