"""Landmarks of real photographs: dlib's HOG face detector and 68-point shape predictor.

Real Multi-PIE comes without the 5-point landmark file the covariates stage aligns with (the
world writes its own). This module makes it, as the tools of the field do:

* faces: ``dlib.get_frontal_face_detector()`` (HOG + linear SVM), up-sampling the photo
  ``upsample`` times; a photo with no face or with several is reported and skipped, never
  fatal (which of several faces is the subject is not ours to guess);
* 68 iBUG points: ``shape_predictor_68_face_landmarks.dat``, by default the copy shipped in the
  ``face_recognition_models`` package (found without importing it: its ``__init__`` imports
  ``pkg_resources``, which current setuptools no longer has);
* 68 -> 5 points as insightface and NVIDIA's FFHQ script take them: the means of the two eye
  contours (36-41, 42-47), the nose tip (30) and the mouth corners (48, 54), in image-left
  first order. The 68 points are kept too (FFHQ alignment uses the full mouth and eye sets).

dlib is an optional dependency (``pip install -e .[landmarks]``: ``dlib-bin`` and
``face_recognition_models``); without it the stage stops with one line saying so.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brownface.covariates.align import five_points, load_rgb
from brownface.errors import UserError

log = logging.getLogger(__name__)

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
N_POINTS = 68
HEADER_68 = ("path",) + tuple(f"p{i}_{c}" for i in range(N_POINTS) for c in ("x", "y"))
REPORT_HEADER = ("path", "problem")


def _dlib():
    try:
        import dlib  # noqa: PLC0415  (optional)
    except ImportError:
        raise UserError(
            "landmark detection needs dlib: pip install -e '.[landmarks]' (dlib-bin and "
            "face_recognition_models), or give covariates.landmarks a 5-point landmark CSV"
        ) from None
    return dlib


def default_predictor() -> Path:
    """dlib's 68-point model from the face_recognition_models package, found without
    importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "landmark detection: no dlib shape predictor: pip install face_recognition_models "
            "or set covariates.detection.predictor to a shape_predictor_68_face_landmarks.dat"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise UserError(f"{path}: face_recognition_models has no {PREDICTOR_FILE}")
    return path


@dataclass
class Detections:
    """68 points per photo with exactly one face, and the photos skipped with the reason."""

    points68: dict[str, np.ndarray] = field(default_factory=dict)  # rel -> float64 [68, 2]
    problems: dict[str, str] = field(default_factory=dict)  # rel -> why it was skipped

    def five(self) -> dict[str, np.ndarray]:
        return {rel: five_points(p) for rel, p in self.points68.items()}


class LandmarkDetector:
    """dlib's face detector and shape predictor, loaded once."""

    def __init__(self, predictor: str | Path | None = None, upsample: int = 1) -> None:
        dlib = _dlib()
        path = Path(predictor) if predictor is not None else default_predictor()
        if not path.is_file():
            raise UserError(f"{path}: dlib shape predictor file not found")
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(path))
        self.upsample = upsample

    def detect(self, image: np.ndarray) -> tuple[np.ndarray | None, str | None]:
        """([68, 2] points, None) for an RGB uint8 image with one face, else (None, reason)."""
        faces = list(self.detector(np.ascontiguousarray(image), self.upsample))
        if len(faces) != 1:
            return None, "no face found" if not faces else f"{len(faces)} faces found"
        parts = self.shape(image, faces[0]).parts()
        return np.array([[p.x, p.y] for p in parts], dtype=np.float64), None

    def detect_files(self, root: str | Path, relpaths: Sequence[str]) -> Detections:
        out = Detections()
        for rel in relpaths:
            try:
                image = np.asarray(load_rgb(Path(root) / rel))
            except UserError as err:
                out.problems[rel] = str(err).split(": ", 1)[-1]
                continue
            points, problem = self.detect(image)
            if points is None:
                out.problems[rel] = problem
            else:
                out.points68[rel] = points
        return out


def write_points68(path: str | Path, points68: dict[str, np.ndarray]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER_68)
        for rel in sorted(points68):
            writer.writerow([rel, *(f"{v:.1f}" for v in points68[rel].reshape(-1))])


def read_points68(path: str | Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != HEADER_68:
        raise UserError(f"{path}: not a 68-point landmark file (header {HEADER_68[:3]}...)")
    return {r[0]: np.array(r[1:], dtype=np.float64).reshape(N_POINTS, 2) for r in rows[1:]}


def write_report(path: str | Path, problems: dict[str, str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(REPORT_HEADER)
        for rel in sorted(problems):
            writer.writerow([rel, problems[rel]])


def read_report(path: str | Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != REPORT_HEADER:
        raise UserError(f"{path}: not a landmark detection report (header path,problem)")
    return {r[0]: r[1] for r in rows[1:]}
