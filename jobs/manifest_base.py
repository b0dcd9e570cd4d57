"""What the job and training manifests share: YAML with line numbers, inputs, weights references,
checks on prefixes and layer names, redaction of credentials, ids derived from content.

Both kinds are typed, frozen documents (:mod:`colorstyle_core.documents`): an unknown key or a
bad value is refused with its line (``job.yaml:14: pipeline.stylize.stepz: unknown key``).
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

from colorstyle_core import storage
from colorstyle_core.documents import DocumentError, Model, parse_document
from colorstyle_core.loader import WeightsSource
from colorstyle_core.models.vgg import ALL_LAYER_NAMES

_SECRET_KEYS = ("key", "secret", "token", "password", "passwd", "credential", "session", "auth", "sas", "signature")

REDACTED = "•••"
"""What :func:`redact` puts in place of a credential."""

ModelT = TypeVar("ModelT", bound=BaseModel)


class ManifestError(DocumentError):
    """The manifest is invalid; the message lists every problem with its line."""


def redact(value: Any) -> Any:
    """A copy of plain data with the values of credential-like keys (key, secret, token, ...) masked."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and any(s in k.lower() for s in _SECRET_KEYS) and v is not None
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def strip_redacted(value: Any) -> Any:
    """A copy of plain data without the entries :func:`redact` masked (so credentials come from elsewhere)."""
    if isinstance(value, dict):
        return {k: strip_redacted(v) for k, v in value.items() if v != REDACTED}
    if isinstance(value, list):
        return [strip_redacted(v) for v in value if v != REDACTED]
    return value


def no_dot_segments(uri: str | None) -> str | None:
    """A prefix colorstyle writes under (or derives paths from) may not climb with ``..`` (a field validator)."""
    if uri is not None and storage.has_dot_segments(uri):
        raise ValueError(f"{uri!r} has '..' segments; give the prefix without them (paths derived from it must "
                         "provably stay under it)")
    return uri


def known_layers(layers: list[str] | None) -> list[str] | None:
    """VGG layers by name: an unknown name is refused (a field validator)."""
    unknown = sorted(set(layers or ()) - ALL_LAYER_NAMES)
    if unknown:
        raise ValueError(f"unknown VGG layer(s) {unknown} (names look like relu1_1, conv4_2)")
    return layers


class WeightsRef(Model):
    """Where a weight set is: a URI and, for non-published files, its full sha256.

    A plain string is taken as the URI.
    """

    uri: str | None = None
    sha256: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"uri": value} if isinstance(value, str) else value


class FrameSelection(Model):
    """Frames ``start`` (inclusive) to ``end`` (exclusive) of a video; ``end: null`` = to the last."""

    start: int = Field(0, ge=0)
    end: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> FrameSelection:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


SEQUENCE_FPS = Fraction(24)
"""Frames per second of an image sequence whose input entry names none (film's rate)."""


class InputSpec(Model):
    """One input: a file, a directory/prefix (recursive), a glob, a list file (one URI per line), or an image
    sequence (a folder of numbered frames, planned and kept in order as one film).

    A plain string is taken as ``uri``.

    Attributes:
        uri, list, sequence: where the input is (exactly one of them).
        frames: a film's frames to process (videos and sequences).
        fps: an image sequence's frames per second (its frames carry no timing; default 24).
    """

    uri: str | None = None
    list: str | None = None
    sequence: str | None = None
    frames: FrameSelection | None = None
    fps: Fraction | None = Field(None, gt=0, description="image sequence: frames per second (default 24)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"uri": value} if isinstance(value, str) else value

    @field_validator("fps", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        """``24``, ``23.976`` (NTSC's 24000/1001) or ``"24000/1001"`` as an exact rate."""
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, float):
            for nominal in (24, 30, 48, 60):  # 23.976, 29.97, ...: the NTSC rates n * 1000/1001
                if abs(value - nominal * 1000 / 1001) < 5e-4:
                    return Fraction(nominal * 1000, 1001)
            return Fraction(value).limit_denominator(1001)
        try:
            return Fraction(str(value))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"fps {value!r}: a number or a ratio like 24000/1001") from None

    @model_validator(mode="after")
    def _one_source(self) -> InputSpec:
        if sum(x is not None for x in (self.uri, self.list, self.sequence)) != 1:
            raise ValueError("give exactly one of 'uri' (file, prefix or glob), 'list' (a list file) and 'sequence' "
                             "(a folder of numbered frames)")
        if self.fps is not None and self.sequence is None:
            raise ValueError("fps is for an image sequence (sequence: FOLDER); a video file keeps its own timing")
        return self

    @property
    def rate(self) -> Fraction:
        """An image sequence's frames per second (``fps``, default :data:`SEQUENCE_FPS`)."""
        return self.fps if self.fps is not None else SEQUENCE_FPS


class ManifestBase(Model):
    """What every manifest does: credentials masked when shown, weights by reference, an id from its content.

    Each kind declares its own ``storage_options`` (fsspec options for its URIs) where it belongs in the file.
    """

    if TYPE_CHECKING:
        storage_options: dict[str, Any] | None

    def redacted(self) -> dict[str, Any]:
        """The manifest as plain data with credentials masked, for summaries and reports."""
        return redact(self.model_dump(mode="json"))

    def weights_source(self, ref: WeightsRef | None) -> WeightsSource:
        """The loader's :class:`WeightsSource` for a ``weights``-like reference (``None``: the published file)."""
        ref = ref or WeightsRef()
        return WeightsSource(ref.uri, ref.sha256, self.storage_options)

    def content_id(self, prefix: str, include: set[str], drop: dict[str, str] | None = None) -> str:
        """``<prefix>-<12 hex>``: an id from what the manifest computes (the fields in ``include``, without
        ``drop``'s ``{field: key}``), so the same manifest always names the same job or run and a rerun resumes it."""
        identity = self.model_dump(include=include, mode="json")
        for section, key in (drop or {}).items():
            identity[section].pop(key, None)
        return f"{prefix}-{hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]}"


def parse_yaml(text: str, name: str, model: type[ModelT], what: str) -> ModelT:
    """Parse YAML text into ``model`` (any manifest kind), every problem with its line.

    Args:
        what: what a valid file holds at the top, for the message when it is not a mapping.
    Raises:
        ManifestError: YAML syntax errors and every validation problem, each with its line.
    """
    return parse_document(text, name, model, what, ManifestError)


def read_text(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """A manifest's text from a path or fsspec URI.

    Raises:
        ManifestError: unreadable.
    """
    try:
        return storage.read_bytes(uri, storage_options).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{uri}: cannot read manifest ({e})") from None


def is_training(text: str) -> bool:
    """Whether manifest text is a training manifest (it has a top-level ``train`` key)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "train" in data
