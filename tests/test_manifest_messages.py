"""Every message a manifest can produce is in the manifest's terms: wrong types anywhere in the job and
training schemas never show a class name of the code (``TemporalSpec``, ``ColorizeSpec``...)."""

from __future__ import annotations

import copy
import typing

import pytest
import yaml
from pydantic import BaseModel

from jobs.manifest import Manifest, parse_manifest
from jobs.manifest_base import ManifestError
from jobs.train.manifest import TrainManifest, parse_train_manifest

JOB = {
    "inputs": ["in/"], "output": {"prefix": "/tmp/colorstyle-messages/out"},
    "pipeline": {"colorize": {"model": "eccv16", "temporal": {"enabled": True}},
                 "stylize": {"styles": ["style.jpg"], "temporal": {"enabled": True}}},
    "execution": {"actors": 1}, "metrics": {"video_consistency": True},
}
TRAIN = {"name": "t", "train": {"kind": "stylizer", "styles": ["s.jpg"], "data": ["d/"], "output": "/tmp/o",
                                "untrained_vgg": True},
         "execution": {"workers": 1}}
WRONG = ("not-a-thing", 3.5, [1, 2], {"unknown": 1}, True, None)


def _models(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through unions, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models(arg)
    return found


def _paths(model: type[BaseModel], prefix: tuple = ()) -> typing.Iterator[tuple[tuple, list[type[BaseModel]]]]:
    for name, info in model.model_fields.items():
        subs = _models(info.annotation)
        yield prefix + (name,), subs
        for sub in subs:
            if typing.get_origin(info.annotation) in (list, dict):
                continue  # items of a list or values of a mapping: the whole is replaced above
            yield from _paths(sub, prefix + (name,))


def _class_names(model: type[BaseModel], seen: set[str]) -> set[str]:
    if model.__name__ not in seen:
        seen.add(model.__name__)
        for info in model.model_fields.values():
            for sub in _models(info.annotation):
                _class_names(sub, seen)
    return seen


def _set(doc: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("schema, base, parse", [
    (Manifest, JOB, parse_manifest), (TrainManifest, TRAIN, parse_train_manifest),
], ids=["job", "train"])
def test_no_message_names_a_class_of_the_code(schema, base, parse):
    names = _class_names(schema, set()) | {"BaseModel", "ValidationError"}
    names.discard("Model")  # also an English word
    checked = 0
    for path, _ in _paths(schema):
        for wrong in WRONG:
            try:
                parse(yaml.safe_dump(_set(base, path, wrong)), "m.yaml")
            except ManifestError as e:
                message = str(e)
                checked += 1
                shown = [n for n in names if n in message]
                shown += [w for w in ("instance of", "pydantic", "Input should") if w in message]
                assert not shown, f"{'.'.join(map(str, path))} = {wrong!r}: {message}"
    assert checked > 100  # the walk reached the schemas' fields


def test_temporal_true_is_the_short_form_of_enabled():
    def temporal(value):
        return parse_manifest(yaml.safe_dump(_set(JOB, ("pipeline", "colorize", "temporal"), value)), "m.yaml"
                              ).pipeline.colorize.temporal

    assert temporal(True) == temporal({"enabled": True}) and temporal(True).enabled
    assert temporal(False) == temporal({"enabled": False}) and not temporal(False).enabled
    with pytest.raises(ManifestError, match=r"pipeline\.colorize\.temporal: expected true/false or a mapping with "
                                            r"enabled, flow"):
        temporal(5)
