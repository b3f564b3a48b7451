"""Reading a Multi-PIE tree and selecting the paper's three SVM training subsets.

:func:`read_multipie` walks ``<root>/session0S/multiview/SSS/RR/CC_C/*.png``, parses every file
name (``multipie.parse_relpath``) and keeps the files it cannot parse in ``bad`` with the
reason, so a stray or misnamed file is reported and never used. A root without any
``sessionNN/multiview`` folder is not a Multi-PIE tree and is refused.

The subsets (face_synthetics ``latent_analysis.py``, research notes §6) are chosen by rule:

* pose: neutral recordings, flash 07, the six cameras on one side (label 0) against the six on
  the other (label 1); the frontal camera 05_1 is in neither class;
* illumination: camera 05_1, neutral recordings, left flashes 01-03 (label 0) against right
  flashes 11-13 (label 1);
* expressions: camera 05_1, flash 07, neutral (label 0) against one expression (label 1), one
  subset each for smile, surprise, squint, disgust and scream.

Every rule is a field of :class:`SubsetRules`, so a config can narrow or widen it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from brownface.config import SchemaParams, defaults
from brownface.covariates.multipie import EXPRESSIONS, MultiPieImage, parse_relpath
from brownface.errors import UserError

#: Names of the seven covariate directions, in the order they are fitted and stored.
COVARIATES: tuple[str, ...] = ("pose", "illumination", *EXPRESSIONS[1:])

_SESSION = re.compile(r"session\d{2}")


@dataclass(frozen=True)
class MultiPieTree:
    """The parsed images of a tree (sorted by path) and the files that are not Multi-PIE names."""

    root: Path
    images: tuple[MultiPieImage, ...]
    bad: tuple[tuple[str, str], ...]  # (path relative to the root, why it was refused)
    ext: str = "png"

    def relpaths(self) -> list[str]:
        return [im.relpath(self.ext) for im in self.images]

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per session, camera, flash and expression (keys sorted)."""
        columns = {
            "session": [f"{im.session:02d}" for im in self.images],
            "camera": [im.camera for im in self.images],
            "flash": [f"{im.flash:02d}" for im in self.images],
            "expression": [im.expression for im in self.images],
        }
        return {k: dict(sorted(Counter(v).items())) for k, v in columns.items()}

    def summary(self) -> str:
        """A few lines for logs: totals, then each count table on one line."""
        subjects = len({im.subject for im in self.images})
        lines = [f"{self.root}: {len(self.images)} images of {subjects} subjects"]
        if self.bad:
            lines[0] += f", {len(self.bad)} files with bad names"
        for key, table in self.counts().items():
            lines.append(f"  {key}: " + ", ".join(f"{k} {n}" for k, n in table.items()))
        return "\n".join(lines)


def read_multipie(root: str | Path, ext: str = "png") -> MultiPieTree:
    """Walk the multiview part of a Multi-PIE tree; see the module docstring."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: Multi-PIE root is not a directory")
    sessions = sorted(
        p for p in root.iterdir() if _SESSION.fullmatch(p.name) and (p / "multiview").is_dir()
    )
    if not sessions:
        raise UserError(
            f"{root}: not a Multi-PIE tree (no sessionNN/multiview folders; expected "
            "session0S/multiview/SSS/RR/CC_C/SSS_0S_RR_CCC_FF.png)"
        )
    images: list[MultiPieImage] = []
    bad: list[tuple[str, str]] = []
    for session in sessions:
        for dirpath, dirnames, filenames in os.walk(session / "multiview"):
            dirnames.sort()
            for name in sorted(filenames):
                rel = (Path(dirpath) / name).relative_to(root).as_posix()
                try:
                    images.append(parse_relpath(rel, ext=ext))
                except UserError as exc:
                    bad.append((rel, str(exc).removeprefix(f"{rel}: ")))
    if not images:
        raise UserError(f"{root}: no Multi-PIE .{ext} images under sessionNN/multiview")
    images.sort(key=lambda im: im.relpath(ext))
    return MultiPieTree(root, tuple(images), tuple(bad), ext)


# ---------------------------------------------------------------------------------------------
# Training subsets.


_OPPOSED = (("pose_negative", "pose_positive"), ("illumination_negative", "illumination_positive"))
_D = defaults("subsets")


@dataclass(frozen=True)
class SubsetRules(SchemaParams):
    """Which images train each SVM (config ``covariates.subsets``); defaults and limits are the
    schema's ``subsets`` (the paper's: the cameras and flashes of the module docstring)."""

    SCHEMA: ClassVar[str] = "subsets"
    CONFIG_KEY: ClassVar[str] = "covariates.subsets"

    pose_negative: tuple[str, ...] = _D["pose_negative"]  # pose label 0 cameras
    pose_positive: tuple[str, ...] = _D["pose_positive"]  # pose label 1 cameras
    pose_flashes: tuple[int, ...] = _D["pose_flashes"]  # flashes of the pose images
    illumination_cameras: tuple[str, ...] = _D["illumination_cameras"]
    illumination_negative: tuple[int, ...] = _D["illumination_negative"]  # label 0 flashes
    illumination_positive: tuple[int, ...] = _D["illumination_positive"]  # label 1 flashes
    expression_cameras: tuple[str, ...] = _D["expression_cameras"]
    expression_flashes: tuple[int, ...] = _D["expression_flashes"]
    subjects: tuple[int, ...] | None = _D["subjects"]  # training subjects; None = every one

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) is not None:
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))  # YAML lists
        super().__post_init__()

    def check(self) -> None:
        for a, b in _OPPOSED:
            common = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if common:
                raise UserError(f"config covariates.subsets: {a} and {b} share {common[0]!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: None if getattr(self, f.name) is None else list(getattr(self, f.name))
            for f in fields(self)
        }


@dataclass(frozen=True)
class Subset:
    """One SVM's training set: rows of the image list it was selected from, and 0/1 labels."""

    name: str
    index: np.ndarray  # int64 [n], increasing
    labels: np.ndarray  # int64 [n]

    def counts(self) -> tuple[int, int]:
        return int((self.labels == 0).sum()), int((self.labels == 1).sum())


def _label(im: MultiPieImage, name: str, rules: SubsetRules) -> int | None:
    """0 or 1 if the image belongs to subset ``name``, else None."""
    neutral = im.expression == "neutral"
    if name == "pose":
        if not neutral or im.flash not in rules.pose_flashes:
            return None
        if im.camera in rules.pose_negative:
            return 0
        return 1 if im.camera in rules.pose_positive else None
    if name == "illumination":
        if not neutral or im.camera not in rules.illumination_cameras:
            return None
        if im.flash in rules.illumination_negative:
            return 0
        return 1 if im.flash in rules.illumination_positive else None
    if im.camera not in rules.expression_cameras or im.flash not in rules.expression_flashes:
        return None
    if neutral:
        return 0
    return 1 if im.expression == name else None


def select_subsets(images: Sequence[MultiPieImage], rules: SubsetRules) -> dict[str, Subset]:
    """The seven subsets (in :data:`COVARIATES` order) as rows of ``images``."""
    subjects = None if rules.subjects is None else set(rules.subjects)
    out = {}
    for name in COVARIATES:
        rows, labels = [], []
        for i, im in enumerate(images):
            if subjects is not None and im.subject not in subjects:
                continue
            label = _label(im, name, rules)
            if label is not None:
                rows.append(i)
                labels.append(label)
        out[name] = Subset(name, np.asarray(rows, np.int64), np.asarray(labels, np.int64))
    return out


def training_rows(subsets: Mapping[str, Subset]) -> np.ndarray:
    """The rows used by any subset (sorted, unique): the images worth projecting."""
    parts = [s.index for s in subsets.values()]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def subsets_summary(subsets: Mapping[str, Subset]) -> str:
    """One line: label-0 / label-1 counts of every subset."""
    return ", ".join(f"{n} {a}/{b}" for n, (a, b) in ((n, s.counts()) for n, s in subsets.items()))
