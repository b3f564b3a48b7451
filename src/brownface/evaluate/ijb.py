"""IJB-B / IJB-C meta files in the layout insightface's ``eval_ijbc.py`` expects.

Layout: ``<root>/loose_crop/<image_name>`` (e.g. ``1.jpg``) and ``<root>/meta/`` holding three
space-separated files without header, named with the prefix ``ijbb`` or ``ijbc``:

* ``<prefix>_face_tid_mid.txt``: ``image_name template_id media_id`` (e.g. ``1.jpg 1 69544``);
* ``<prefix>_template_pair_label.txt``: ``template_id_1 template_id_2 label`` (1 genuine,
  0 impostor);
* ``<prefix>_name_5pts_score.txt``: ``image_name x1 y1 ... x5 y5 score``: five landmarks in the
  ArcFace order (left eye, right eye, nose, left and right mouth corner; image coordinates) and
  the detector score.

The two per-image files are aligned line by line (features are indexed by row), so the reader
insists on the same image names in the same order. Files are read with pandas for speed (IJB-C
has ~15.7M template pairs); a line-by-line pass runs only to name the bad line of a broken file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brownface.errors import UserError

PREFIXES: tuple[str, ...] = ("ijbb", "ijbc")
LANDMARK_DECIMALS = 2
SCORE_DECIMALS = 6

_FACE_COLUMNS: dict[str, type] = {"image_name": str, "template_id": np.int64, "media_id": np.int64}
_PAIR_COLUMNS: dict[str, type] = {"t1": np.int64, "t2": np.int64, "label": np.int64}
_LMK_COLUMNS: dict[str, type] = {
    "image_name": str,
    **{f"{c}{i}": np.float64 for i in range(1, 6) for c in ("x", "y")},
    "score": np.float64,
}


@dataclass
class IJBMeta:
    """Per-image rows (aligned) and the template pairs of one IJB benchmark."""

    image_names: list[str]
    template_ids: np.ndarray  # int64 [M]
    media_ids: np.ndarray  # int64 [M]
    landmarks: np.ndarray  # float32 [M, 5, 2]
    scores: np.ndarray  # float32 [M]
    t1: np.ndarray  # int64 [P]
    t2: np.ndarray  # int64 [P]
    labels: np.ndarray  # int64 [P], 1 genuine / 0 impostor


def _check_prefix(prefix: str) -> None:
    if prefix not in PREFIXES:
        raise UserError(f"IJB prefix must be one of {', '.join(PREFIXES)}, got {prefix!r}")


def meta_paths(root: str | Path, prefix: str = "ijbc") -> tuple[Path, Path, Path]:
    """Paths of the (face_tid_mid, template_pair_label, name_5pts_score) files under ``root``."""
    _check_prefix(prefix)
    meta = Path(root) / "meta"
    return (
        meta / f"{prefix}_face_tid_mid.txt",
        meta / f"{prefix}_template_pair_label.txt",
        meta / f"{prefix}_name_5pts_score.txt",
    )


def image_dir(root: str | Path) -> Path:
    """The folder holding the loosely cropped images, ``<root>/loose_crop``."""
    return Path(root) / "loose_crop"


def _check_image_names(image_names: Sequence[str]) -> None:
    for name in image_names:
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"IJB image name {name!r} is empty or contains whitespace")


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_face_tid_mid(
    path: str | Path,
    image_names: Sequence[str],
    template_ids: Sequence[int],
    media_ids: Sequence[int],
) -> None:
    """Write ``image_name template_id media_id`` lines."""
    if not len(image_names) == len(template_ids) == len(media_ids):
        raise ValueError("image_names, template_ids and media_ids must have the same length")
    _check_image_names(image_names)
    lines = [
        f"{n} {int(t)} {int(m)}"
        for n, t, m in zip(image_names, template_ids, media_ids, strict=True)
    ]
    _write_lines(Path(path), lines)


def write_template_pair_label(
    path: str | Path, t1: Sequence[int], t2: Sequence[int], labels: Sequence[int]
) -> None:
    """Write ``template_id_1 template_id_2 label`` lines (label 1 genuine, 0 impostor)."""
    if not len(t1) == len(t2) == len(labels):
        raise ValueError("t1, t2 and labels must have the same length")
    if any(int(x) not in (0, 1) for x in labels):
        raise ValueError("labels must be 0 or 1")
    _write_lines(
        Path(path), [f"{int(a)} {int(b)} {int(c)}" for a, b, c in zip(t1, t2, labels, strict=True)]
    )


def write_name_5pts_score(
    path: str | Path, image_names: Sequence[str], landmarks: np.ndarray, scores: Sequence[float]
) -> None:
    """Write ``image_name x1 y1 ... x5 y5 score`` lines (fixed decimals, deterministic)."""
    lmk = np.asarray(landmarks, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if lmk.shape != (len(image_names), 5, 2) or sc.shape != (len(image_names),):
        raise ValueError(
            f"expected landmarks ({len(image_names)}, 5, 2) and scores ({len(image_names)},), "
            f"got {lmk.shape} and {sc.shape}"
        )
    if not (np.all(np.isfinite(lmk)) and np.all(np.isfinite(sc))):
        raise ValueError("landmarks and scores must be finite")
    _check_image_names(image_names)
    lines = []
    for name, points, score in zip(image_names, lmk.reshape(-1, 10), sc, strict=True):
        coords = " ".join(f"{v:.{LANDMARK_DECIMALS}f}" for v in points)
        lines.append(f"{name} {coords} {score:.{SCORE_DECIMALS}f}")
    _write_lines(Path(path), lines)


def write_ijb(root: str | Path, meta: IJBMeta, prefix: str = "ijbc") -> None:
    """Write all three meta files of ``meta`` under ``<root>/meta``."""
    faces, pairs, lmks = meta_paths(root, prefix)
    write_face_tid_mid(faces, meta.image_names, meta.template_ids, meta.media_ids)
    write_template_pair_label(pairs, meta.t1, meta.t2, meta.labels)
    write_name_5pts_score(lmks, meta.image_names, meta.landmarks, meta.scores)


def _diagnose(path: Path, columns: dict[str, type]) -> None:
    """Raise a UserError naming the first malformed line of ``path`` (slow; errors only)."""
    kinds = list(columns.values())
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, text in enumerate(f, start=1):
            fields = text.split()
            if not fields:
                continue
            if len(fields) != len(kinds):
                raise UserError(
                    f"{path} line {line_no}: expected {len(kinds)} space-separated fields "
                    f"({' '.join(columns)}), got {len(fields)}"
                )
            for name, kind, field in zip(columns, kinds, fields, strict=True):
                if kind is str:
                    continue
                try:
                    value = float(int(field)) if kind is np.int64 else float(field)
                except ValueError:
                    what = "an integer" if kind is np.int64 else "a number"
                    raise UserError(
                        f"{path} line {line_no}: {name} must be {what}, got {field!r}"
                    ) from None
                if not np.isfinite(value):
                    raise UserError(f"{path} line {line_no}: {name} is not finite: {field!r}")


def _read_table(path: Path, columns: dict[str, type]) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: IJB meta file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                path,
                sep=r"\s+",
                header=None,
                names=list(columns),
                dtype=columns,
                index_col=False,
                na_filter=False,
                engine="c",
            )
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: file is empty") from None
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        _diagnose(path, columns)
        raise UserError(f"{path}: cannot parse ({exc})") from None
    numeric = [c for c, kind in columns.items() if kind is not str]
    if not np.all(np.isfinite(df[numeric].to_numpy(dtype=np.float64))):
        _diagnose(path, columns)
        raise UserError(f"{path}: contains missing or non-finite values")
    if df.empty:
        raise UserError(f"{path}: file is empty")
    return df


def read_ijb(root: str | Path, prefix: str = "ijbc") -> IJBMeta:
    """Read and cross-check the three meta files under ``<root>/meta``."""
    faces_path, pairs_path, lmk_path = meta_paths(root, prefix)
    faces = _read_table(faces_path, _FACE_COLUMNS)
    lmks = _read_table(lmk_path, _LMK_COLUMNS)
    pairs = _read_table(pairs_path, _PAIR_COLUMNS)

    names = faces["image_name"].tolist()
    lmk_names = lmks["image_name"].tolist()
    if len(names) != len(lmk_names):
        raise UserError(
            f"{lmk_path}: has {len(lmk_names)} rows but {faces_path.name} has {len(names)}; "
            "the two files must list the same images in the same order"
        )
    if names != lmk_names:
        row = next(i for i, (a, b) in enumerate(zip(names, lmk_names, strict=True)) if a != b)
        raise UserError(
            f"{lmk_path} row {row + 1}: image {lmk_names[row]!r} but {faces_path.name} row "
            f"{row + 1} has {names[row]!r}; the two files must list images in the same order"
        )

    labels = pairs["label"].to_numpy(np.int64)
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise UserError(
            f"{pairs_path} row {bad[0] + 1}: label must be 0 or 1, got {labels[bad[0]]}"
        )
    template_ids = faces["template_id"].to_numpy(np.int64)
    t1 = pairs["t1"].to_numpy(np.int64)
    t2 = pairs["t2"].to_numpy(np.int64)
    known = np.unique(template_ids)
    for col in (t1, t2):
        unknown = np.flatnonzero(~np.isin(col, known))
        if unknown.size:
            raise UserError(
                f"{pairs_path} row {unknown[0] + 1}: template {col[unknown[0]]} has no images "
                f"in {faces_path.name}"
            )

    coords = lmks[[f"{c}{i}" for i in range(1, 6) for c in ("x", "y")]].to_numpy(np.float32)
    return IJBMeta(
        image_names=names,
        template_ids=template_ids,
        media_ids=faces["media_id"].to_numpy(np.int64),
        landmarks=coords.reshape(-1, 5, 2),
        scores=lmks["score"].to_numpy(np.float32),
        t1=t1,
        t2=t2,
        labels=labels,
    )


# ---------------------------------------------------------------------------------------------
# 1:N identification lists.

#: The two gallery parts of each benchmark (concatenated) and the mixed probe list.
GALLERIES: dict[str, tuple[str, str]] = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}


def identification_paths(root: str | Path, prefix: str = "ijbc") -> tuple[list[Path], Path]:
    """Paths of the gallery CSVs and of the mixed probe CSV under ``<root>/meta``."""
    _check_prefix(prefix)
    meta = Path(root) / "meta"
    galleries = [meta / f"{prefix}_1N_gallery_{part}.csv" for part in GALLERIES[prefix]]
    return galleries, meta / f"{prefix}_1N_probe_mixed.csv"


def has_identification(root: str | Path, prefix: str = "ijbc") -> bool:
    """Whether the benchmark ships its 1:N lists (all three files)."""
    galleries, probe = identification_paths(root, prefix)
    return all(p.is_file() for p in [*galleries, probe])


def write_template_subjects(
    path: str | Path,
    template_ids: Sequence[int],
    subject_ids: Sequence[int],
    filenames: Sequence[str],
) -> None:
    """A 1:N list as NIST ships it: a header, then one ``TEMPLATE_ID,SUBJECT_ID,FILENAME``
    row per image of each template."""
    if not len(template_ids) == len(subject_ids) == len(filenames):
        raise ValueError("template_ids, subject_ids and filenames must have the same length")
    lines = ["TEMPLATE_ID,SUBJECT_ID,FILENAME"] + [
        f"{int(t)},{int(s)},{n}"
        for t, s, n in zip(template_ids, subject_ids, filenames, strict=True)
    ]
    _write_lines(Path(path), lines)


def read_template_subjects(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(template ids, subject ids) of a 1:N list, one entry per distinct template.

    Only the first two columns count (insightface reads no others); a template listed with
    two subjects is an error naming both.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: IJB 1:N list not found")
    try:
        df = pd.read_csv(
            path,
            usecols=[0, 1],
            header=0,
            names=["template", "subject"],
            dtype=np.int64,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(
            f"{path}: expected a header then TEMPLATE_ID,SUBJECT_ID,... rows of integers ({exc})"
        ) from None
    if df.empty:
        raise UserError(f"{path}: lists no templates")
    pairs = df.drop_duplicates()
    dup = pairs["template"].duplicated(keep=False)
    if dup.any():
        t = int(pairs["template"][dup].iloc[0])
        subjects = sorted(pairs["subject"][pairs["template"] == t].tolist())
        raise UserError(
            f"{path}: template {t} is listed with subjects {subjects}; a template has one subject"
        )
    pairs = pairs.sort_values("template")
    return pairs["template"].to_numpy(np.int64), pairs["subject"].to_numpy(np.int64)


@dataclass
class IdentificationLists:
    gallery_templates: np.ndarray  # [G] the galleries' templates, concatenated
    gallery_subjects: np.ndarray  # [G]
    probe_templates: np.ndarray  # [Q]
    probe_subjects: np.ndarray  # [Q]


def read_identification(root: str | Path, prefix: str = "ijbc") -> IdentificationLists:
    """The concatenated galleries and the mixed probes; every subject once in the gallery."""
    gallery_paths, probe_path = identification_paths(root, prefix)
    parts = [read_template_subjects(p) for p in gallery_paths]
    gt = np.concatenate([t for t, _ in parts])
    gs = np.concatenate([s for _, s in parts])
    _, first, counts = np.unique(gs, return_index=True, return_counts=True)
    if (counts > 1).any():
        subject = int(gs[first[counts > 1][0]])
        templates = sorted(int(t) for t in gt[gs == subject])
        raise UserError(
            f"{', '.join(str(p) for p in gallery_paths)}: subject {subject} has gallery templates "
            f"{templates}; 1:N needs exactly one gallery template per subject"
        )
    pt, ps = read_template_subjects(probe_path)
    return IdentificationLists(gt, gs, pt, ps)
