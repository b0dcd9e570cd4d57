"""Deep Exemplar-based Video Colorization (Zhang et al., CVPR 2019): its registry entry.

The authors' three published files (inside their release zip), the networks they fill, how
generated weights are made, what a job's step must hold, and how a job verifies the files once
(in the driver). The colorizer each actor builds from them (the two pipelines, the reference,
the chain along a shot) is :class:`colorstyle_core.exemplar.ExemplarColorizer`.

What makes it another shape than a :class:`~colorstyle_core.colorizers.entry.ColorizerEntry`:
three networks in three files whose published sha256 are not recorded (a job gives them, with
the prefix holding the files), a colour reference photo instead of hints, and a recurrence (a
film's frames form a chain, so frame ranges warm up and a shot restarts the chain).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from colorstyle_core import storage
from colorstyle_core.colorizers.entry import Finetuning
from colorstyle_core.loader import (
    WeightsError,
    WeightsSource,
    WeightsUnavailableError,
    load_verified_state_dict,
    read_sha256sums,
)
from colorstyle_core.models import layout_of
from colorstyle_core.models.deepexemplar import ColorVidNet, ExemplarVGG19, WarpNet
from colorstyle_core.pipeline_types import ColorizeStep, ModelWeights
from colorstyle_core.provenance import Provenance
from colorstyle_core.synthetic import generate
from colorstyle_core.weights import WeightSpec

NAME = "deepexemplar"
"""The colorizer's name in manifests and on the command line."""

_RELEASE = ("https://github.com/zhangmozhe/Deep-Exemplar-based-Video-Colorization/releases/download/v1.0/"
            "colorization_checkpoint.zip")
_REFERENCE = ("Zhang, He, Liao, Sander, Yuan, Bermak, Chen. Deep Exemplar-based Video Colorization. CVPR 2019. "
              "Published inside colorization_checkpoint.zip (release v1.0) as {member}; its sha256 is not "
              "recorded here (it could not be established offline): give the file with its sha256.")


def _spec(name: str, member: str) -> WeightSpec:
    return WeightSpec(name=name, kind="colorizer", url=_RELEASE, sha256="", license="MIT (the authors' repository)",
                      reference=_REFERENCE.format(member=member), preprocess=None,
                      file_name=member.rsplit("/", 1)[-1], archive_member=member)


WEIGHTS: Mapping[str, WeightSpec] = {
    "vgg": _spec("deepexemplar_vgg19", "data/vgg19_conv.pth"),
    "warpnet": _spec("deepexemplar_nonlocal", "checkpoints/video_moredata_l1/nonlocal_net_iter_76000.pth"),
    "colornet": _spec("deepexemplar_colornet", "checkpoints/video_moredata_l1/colornet_iter_76000.pth"),
}
"""The three published files, by role; ``spec.filename`` is the authors' file name. The authors' test
script also loads ``vgg19_gray.pth``, which inference never uses: it is not needed here."""

BUILDERS: Mapping[str, type[nn.Module]] = {"vgg": ExemplarVGG19, "warpnet": WarpNet, "colornet": ColorVidNet}


def generated_weights(seed: int) -> dict[str, dict[str, Tensor]]:
    """Seeded UNTRAINED weights in the three published layouts, by role (PReLU slopes 0.25, as initialised;
    the last convolution scaled so that ab stays in tens, not at tanh's +-128)."""
    out = {}
    for i, (role, build) in enumerate(BUILDERS.items()):
        sd = generate(layout_of(build), seed * 3 + i)
        for key, value in sd.items():
            if value.shape == (1,) and key.endswith(".weight"):  # PReLU
                sd[key] = torch.full((1,), 0.25)
        if role == "colornet":  # ab of a trained magnitude, not tanh's saturation
            sd["conv10_ab.weight"] = sd["conv10_ab.weight"] * 0.05
        out[role] = sd
    return out


def parse_file_hashes(text: str | None, where: str = "sha256") -> dict[str, str]:
    """``"FILE=HEX,FILE=HEX"`` (a job's ``weights.sha256``, the command's ``--weights-sha256``) -> ``{file name: hex}``
    for the three files by the authors' names.

    Raises:
        ValueError: an item that is not ``FILE=<64 hex>`` of one of the three files; the message names ``where``.
    """
    names = {spec.filename for spec in WEIGHTS.values()}
    out = {}
    for item in filter(None, (text or "").split(",")):
        name, sep, digest = (part.strip() for part in item.partition("="))
        if not sep or name not in names or len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise ValueError(f"{where} {item!r}: with {NAME} give FILE=HEX (the full sha256) for its files, "
                             f"{', '.join(sorted(names))}, comma-separated (or a SHA256SUMS file beside them)")
        out[name] = digest.lower()
    return out


def load_state_dicts(prefix: str, sha256: Mapping[str, str] | None = None,
                     storage_options: Mapping[str, object] | None = None
                     ) -> tuple[dict[str, dict[str, Tensor]], Provenance]:
    """Read and verify the three files by the authors' names under ``prefix`` (a folder or object-store prefix).

    Every file is hash-checked: its sha256 from ``sha256`` (``{file name: hex}``), else from
    ``<prefix>/SHA256SUMS``; a file with neither is refused (the published hashes are not recorded).

    Returns:
        ``({role: state_dict}, provenance)``; the provenance's sha256 is that of the three files' digests.
    Raises:
        colorstyle_core.loader.WeightsError: a file missing, without a hash or corrupt.
    """
    sums = {**read_sha256sums(prefix, storage_options), **(sha256 or {})}
    state_dicts, digests = {}, []
    for role, spec in WEIGHTS.items():
        digest = sums.get(spec.filename)
        if not digest:
            raise WeightsError(f"{storage.join(prefix, spec.filename)}: no sha256 for it; the published file's "
                               "is not recorded here: give it (--weights-sha256 NAME=HEX, weights.sha256, "
                               "or a SHA256SUMS file beside the checkpoints)")
        source = WeightsSource(storage.join(prefix, spec.filename), digest, storage_options)
        state_dicts[role], resolved = load_verified_state_dict(spec, source)
        digests.append(f"{resolved.sha256}  {spec.filename}")
    fingerprint = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    return state_dicts, Provenance(NAME, fingerprint, prefix)


def flatten(state_dicts: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The three networks' tensors as one state dict (``role/key``), to ship to actors as one weight set."""
    return {f"{role}/{k}": v for role, sd in state_dicts.items() for k, v in sd.items()}


def unflatten(flat: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """:func:`flatten`'s inverse: ``{role: state_dict}``."""
    out: dict[str, dict[str, Tensor]] = {role: {} for role in BUILDERS}
    for key, value in flat.items():
        role, _, name = key.partition("/")
        out[role][name] = value
    return out


class ExemplarEntry:
    """``deepexemplar`` in :data:`colorstyle_core.colorizers.COLORIZERS` (a
    :class:`~colorstyle_core.colorizers.entry.ColorizerKind`): a reference instead of hints, recurrent, the
    authors' ``image_size`` as its own setting; ``gamut: clip`` (the authors' 432 x 768 output geometry) is for
    ``colorstyle colorize`` only (jobs keep every frame's size)."""

    name = NAME
    takes_hints = False
    takes_reference = True
    recurrent = True
    options = ("image_size",)
    finetuning: Finetuning | None = None
    weight_specs: tuple[WeightSpec, ...] = tuple(WEIGHTS.values())
    networks: Mapping[str, Callable[[], nn.Module]] = {WEIGHTS[role].name: build for role, build in BUILDERS.items()}

    def check_job_step(self, step: ColorizeStep, *, hints: bool, weights_sha256: str | None) -> None:
        if not step.reference and not hints:
            raise ValueError(f"model {NAME} needs reference (URI of a colour photo) or hints (a prefix "
                             "of files naming a reference per input or keyframe)")
        if step.gamut == "clip":
            raise ValueError(f"model {NAME}: gamut clip (the authors' 432 x 768 output) is for "
                             "`colorstyle colorize`; jobs keep every frame's size (preserve-l)")
        if (size := step.image_size) and (size[0] % 16 or size[1] % 16 or min(size) < 16):
            raise ValueError(f"image_size {list(size)}: two multiples of 16")
        parse_file_hashes(weights_sha256, "weights.sha256")

    def load_weights(self, source: WeightsSource) -> ModelWeights:
        if not source.uri:
            raise WeightsUnavailableError(
                f"{NAME}: its published files' sha256 are not recorded: give pipeline.colorize.weights: the prefix "
                f"holding {', '.join(spec.filename for spec in WEIGHTS.values())} with a SHA256SUMS file of them "
                "(or their hashes in weights.sha256: FILE=HEX,...)")
        state_dicts, provenance = load_state_dicts(source.uri, parse_file_hashes(source.sha256),
                                                   source.storage_options)
        return ModelWeights.from_state_dict(NAME, flatten(state_dicts), provenance)

    def describe(self, where: str | None) -> str:
        files = ", ".join(spec.filename for spec in WEIGHTS.values())
        return f"{NAME} weights {files} (sha256 given with them) under {where or 'no prefix given'}"


ENTRIES = (ExemplarEntry(),)
