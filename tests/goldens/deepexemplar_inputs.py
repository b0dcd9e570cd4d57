"""The inputs of the Deep Exemplar parity goldens: made the same way by the goldens' maker and by the test."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 7
"""Seed of the generated weights both sides load."""


@dataclass(frozen=True)
class Case:
    """One golden: frames, a reference, the authors' ``--image_size`` (kept small: the networks are
    the same at any size; 80 x 128 takes the branch that pads ``relu5_2``'s feature, as 432 x 768 does)."""

    name: str
    image_size: tuple[int, int]
    frames: int


CASES = (Case("still", (80, 128), 1), Case("shot", (96, 160), 8))


def shared() -> Path:
    return Path(os.environ.get("COLORSTYLE_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def case_inputs(case: Case) -> tuple[list[np.ndarray], np.ndarray]:
    """``(frames, reference)`` as ``(H, W, 3)`` uint8 arrays: PNG-exact, PIL-resized from the shared photos."""
    data = shared() / "data"
    reference = np.asarray(Image.open(data / "color" / "lighthouse.jpg").convert("RGB").resize((160, 120)))
    if case.frames == 1:
        return [np.asarray(Image.open(data / "gray" / "lighthouse.jpg").convert("RGB").resize((150, 100)))], reference
    gray = Image.open(data / "gray" / "farm_dog.jpg").convert("RGB").resize((240, 160))
    frames = [np.asarray(gray.crop((4 * i, 2 * i, 4 * i + 200, 2 * i + 120))) for i in range(case.frames)]
    return frames, reference
