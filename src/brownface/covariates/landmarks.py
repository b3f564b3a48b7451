"""User-provided 5-point landmark files (our own CSV format).

Alignment of real photographs (Multi-PIE, custom sets) needs five landmarks per image; users who
run their own detector hand them over in this file instead of us shipping a detector. Format:

* UTF-8 CSV with exactly this header::

      path,left_eye_x,left_eye_y,right_eye_x,right_eye_y,nose_x,nose_y,
      mouth_left_x,mouth_left_y,mouth_right_x,mouth_right_y

  (one line in the file).
* ``path`` is relative to the dataset root, with forward slashes; each path appears once.
* Points are pixel coordinates (x to the right, y down) in the ArcFace/insightface 5-point order:
  left eye, right eye, nose tip, left mouth corner, right mouth corner, where "left" means the
  image's left (the same order as the IJB ``name_5pts_score`` files and the ArcFace template).

:func:`write_landmarks` sorts rows by path and writes 3 decimals so the output is deterministic.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brownface.errors import UserError

POINT_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
HEADER: tuple[str, ...] = ("path",) + tuple(f"{p}_{c}" for p in POINT_NAMES for c in ("x", "y"))
DECIMALS = 3


def _fmt(value: float) -> str:
    text = f"{value:.{DECIMALS}f}"
    return "0.000" if text == "-0.000" else text


def write_landmarks(path: str | Path, rows: Mapping[str, np.ndarray]) -> None:
    """Write ``{relative image path: (5, 2) points}`` as a landmark CSV, sorted by path."""
    path = Path(path)
    lines = [",".join(HEADER)]
    for rel in sorted(rows):
        points = np.asarray(rows[rel], dtype=np.float64)
        if points.shape != (5, 2):
            raise ValueError(f"landmarks for {rel!r} must have shape (5, 2), got {points.shape}")
        if not np.all(np.isfinite(points)):
            raise ValueError(f"landmarks for {rel!r} contain NaN or infinity")
        if not rel or any(ch in rel for ch in ',"\r\n'):
            raise ValueError(f"image path {rel!r} is empty or contains a comma, quote or newline")
        lines.append(",".join([rel, *(_fmt(v) for v in points.reshape(-1))]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """Read a landmark CSV into ``{relative image path: float32 (5, 2) points}``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: landmark file not found")
    out: dict[str, np.ndarray] = {}
    first_line: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            got = ",".join(header) if header else "an empty file"
            raise UserError(f"{path} line 1: expected header {','.join(HEADER)}, got {got!r}")
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(HEADER):
                raise UserError(
                    f"{path} line {line}: expected {len(HEADER)} comma-separated fields, "
                    f"got {len(row)}"
                )
            rel = row[0].strip()
            if not rel:
                raise UserError(f"{path} line {line}: empty image path")
            if rel.startswith("/") or "\\" in rel:
                raise UserError(
                    f"{path} line {line}: image path {rel!r} must be relative, with forward slashes"
                )
            if rel in out:
                raise UserError(
                    f"{path} line {line}: duplicate image path {rel!r} "
                    f"(first on line {first_line[rel]})"
                )
            values = []
            for name, cell in zip(HEADER[1:], row[1:], strict=True):
                try:
                    value = float(cell)
                except ValueError:
                    raise UserError(
                        f"{path} line {line}: {name} is not a number: {cell!r}"
                    ) from None
                if not math.isfinite(value):
                    raise UserError(f"{path} line {line}: {name} is not finite: {cell!r}")
                values.append(value)
            out[rel] = np.asarray(values, dtype=np.float32).reshape(5, 2)
            first_line[rel] = line
    return out
