"""Typed documents: YAML (or JSON, which YAML reads too) parsed once into frozen pydantic models.

Every problem is reported as ``file:line: key.path: problem``, with the line of the key (or
of the closest parent that exists, for a missing key), so a user can go straight to it:
the job and training manifests (``jobs/manifest.py``, ``jobs/train/manifest.py``) and the
hints files (:mod:`colorstyle_core.hints`) all read this way. Messages speak the file's
terms: no class names of the code, a missing key named as missing, a wrong type named by
what was expected (:data:`EXPECTED`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class Model(BaseModel):
    """A document's typed part: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DocumentError(ValueError):
    """A document is invalid; the message lists every problem with its line."""


EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a text value",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "too_short": "too few items",
    "too_long": "too many items",
    "dict_type": "expected a mapping (key: value pairs)",
    "model_type": "expected a mapping (key: value pairs)",
    "model_attributes_type": "expected a mapping (key: value pairs)",
    "missing": "missing (required)",
    "extra_forbidden": "unknown key",
}
"""Messages for pydantic's error types, in the document's terms (pydantic's own name the code's classes)."""


def node_at(root: yaml.Node | None, loc: tuple) -> tuple[yaml.Node | None, tuple]:
    """The YAML node a pydantic error location points to (the key for mapping entries, the
    closest existing parent for missing ones) and the location as the file spells it.

    A part that names no key but is a value of the mapping (``kind: colorizer``) is a tagged
    union's member name (``train.colorizer.steps``): it is not a key in the file, so it is skipped.
    """
    node = found = root
    shown = []
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                if i + 1 < len(loc) and any(isinstance(v, yaml.ScalarNode) and v.value == str(part)
                                            for _, v in node.value):
                    continue  # a tagged union's member, named by the mapping's own discriminator value
                shown += loc[i:]
                break
            found, node = pair
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = found = node.value[part]
        else:
            shown += loc[i:]
            break
        shown.append(part)
    return found, tuple(shown)


BOUNDS = {"greater_than": "more than {gt}", "greater_than_equal": "at least {ge}", "less_than": "less than {lt}",
          "less_than_equal": "at most {le}"}
"""Messages for pydantic's bound errors (``Field(ge=...)``), from the bound in the error's context."""


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = error.get("input")
    if kind in EXPECTED:
        shown = "" if kind in ("missing", "extra_forbidden") or isinstance(got, dict) else f", got {got!r}"
        return EXPECTED[kind] + shown
    if kind == "literal_error" and "expected" in ctx:
        return f"expected {ctx['expected']}, got {got!r}"
    if kind == "union_tag_not_found" and "discriminator" in ctx:
        return f"missing {ctx['discriminator'].strip(chr(39))} (which kind of document this is)"
    if kind == "union_tag_invalid" and "expected_tags" in ctx:
        return f"expected one of {ctx['expected_tags']}, got {ctx.get('tag', got)!r}"
    if kind in BOUNDS:
        return f"expected a value {BOUNDS[kind].format(**ctx)}, got {got!r}"
    return str(error["msg"]).removeprefix("Value error, ")


def format_errors(err: ValidationError, root: yaml.Node | None, name: str) -> str:
    """Every error of ``err`` as ``name:line: key.path: problem``, one per line."""
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p not in ("function-after", "function-before", "function-wrap"))
        node, shown = node_at(root, loc)
        line = f"{name}:{node.start_mark.line + 1}" if node is not None else name
        path = ".".join(str(p) for p in shown) or "(top level)"
        lines.append(f"{line}: {path}: {_message(e)}")
    return "\n".join(lines)


def parse_document(text: str, name: str, model: type[ModelT], what: str,
                   error: type[ValueError] = DocumentError) -> ModelT:
    """Parse YAML (or JSON) text into ``model``, every problem with its line.

    Args:
        text: the document.
        name: its file name or URI, for messages.
        model: the top-level model.
        what: what a valid file holds at the top, for the message when it is not a mapping.
        error: the exception raised (a :class:`ValueError` taking the message).
    Raises:
        ``error``: syntax errors and every validation problem, each with its line.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(f"{name}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise error(f"{name}: expected a mapping with {what}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise error(format_errors(e, root, name)) from None


def line_of(text: str, loc: tuple) -> int | None:
    """The 1-based line of the key at ``loc`` in YAML/JSON ``text`` (``None`` when it cannot be found)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    node, _ = node_at(root, loc)
    return None if node is None else node.start_mark.line + 1
