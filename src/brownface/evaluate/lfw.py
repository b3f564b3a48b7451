"""The original LFW layout: ``<root>/<Name>/<Name>_<NNNN>.jpg`` and View 2 ``pairs.txt``.

``pairs.txt`` (LFW View 2, e.g. the copy in davidsandberg/facenet) is tab-separated. Line 1 is
``<n_folds>\\t<n_per_kind>`` (``10\\t300``); then each fold has ``n_per_kind`` matched lines
``name\\tn1\\tn2`` followed by ``n_per_kind`` mismatched lines ``name1\\tn1\\tname2\\tn2``, so the
real file has 6001 lines with field counts alternating 3, 4 in blocks of 300. Image indices are
1-based and zero-padded to 4 digits in file names. The View 1 files (``pairsDevTrain.txt``) have a
one-number header ``<n_per_kind>`` and a single fold; :func:`read_pairs` accepts those too.
insightface packs ``lfw.bin`` in this same order, so pair ``i`` here is pair ``i`` there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brownface.errors import UserError

MatchedPair = tuple[str, int, int]
MismatchedPair = tuple[str, int, str, int]
Fold = tuple[Sequence[MatchedPair], Sequence[MismatchedPair]]


@dataclass(frozen=True)
class Pair:
    """One LFW pair; ``fold`` is 0-based."""

    name1: str
    index1: int
    name2: str
    index2: int
    same: bool
    fold: int


def image_relpath(name: str, index: int) -> str:
    """``{name}/{name}_{index:04d}.jpg``, the path of image ``index`` (1-based) of ``name``."""
    return f"{name}/{name}_{index:04d}.jpg"


def _check_name(name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "/" in name:
        raise ValueError(f"LFW name {name!r} is empty or contains whitespace or '/'")


def write_pairs(path: str | Path, folds: Sequence[Fold]) -> None:
    """Write a View-2 style ``pairs.txt``; every fold needs the same number of each kind."""
    if not folds:
        raise ValueError("pairs.txt needs at least one fold")
    n = len(folds[0][0])
    lines = [f"{len(folds)}\t{n}"]
    for f, (matched, mismatched) in enumerate(folds):
        if len(matched) != n or len(mismatched) != n:
            raise ValueError(
                f"fold {f} has {len(matched)} matched and {len(mismatched)} mismatched pairs; "
                f"every fold needs {n} of each"
            )
        for name, i1, i2 in matched:
            _check_name(name)
            lines.append(f"{name}\t{int(i1)}\t{int(i2)}")
        for name1, i1, name2, i2 in mismatched:
            _check_name(name1)
            _check_name(name2)
            lines.append(f"{name1}\t{int(i1)}\t{name2}\t{int(i2)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _positive_int(text: str, path: Path, line: int, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UserError(f"{path} line {line}: {what} must be a positive integer, got {text!r}")
    return int(text)


def read_pairs(path: str | Path) -> list[Pair]:
    """Parse ``pairs.txt`` into pairs in file order, checking header and block structure."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: pairs file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UserError(f"{path}: empty pairs file (expected header '<n_folds>\\t<n_per_kind>')")
    header = lines[0].split()
    if len(header) == 2:
        n_folds = _positive_int(header[0], path, 1, "header n_folds")
        n_per_kind = _positive_int(header[1], path, 1, "header n_per_kind")
    elif len(header) == 1:
        n_folds, n_per_kind = 1, _positive_int(header[0], path, 1, "header n_per_kind")
    else:
        raise UserError(
            f"{path} line 1: expected header '<n_folds>\\t<n_per_kind>', got {lines[0]!r}"
        )
    body = lines[1:]
    expected = 2 * n_folds * n_per_kind
    if len(body) != expected:
        raise UserError(
            f"{path}: header says {n_folds} folds x 2 x {n_per_kind} pairs = {expected} lines, "
            f"but the file has {len(body)} pair lines"
        )
    pairs: list[Pair] = []
    for k, text in enumerate(body):
        line = k + 2
        fold, pos = divmod(k, 2 * n_per_kind)
        same = pos < n_per_kind
        fields = text.split()
        want = 3 if same else 4
        if len(fields) != want:
            kind = "matched" if same else "mismatched"
            raise UserError(
                f"{path} line {line}: expected {want} tab-separated fields "
                f"({kind} pair {pos % n_per_kind + 1} of fold {fold + 1}), got {len(fields)}"
            )
        if same:
            name1 = name2 = fields[0]
            i1, i2 = fields[1], fields[2]
        else:
            name1, i1, name2, i2 = fields
        pairs.append(
            Pair(
                name1=name1,
                index1=_positive_int(i1, path, line, "image index"),
                name2=name2,
                index2=_positive_int(i2, path, line, "image index"),
                same=same,
                fold=fold,
            )
        )
    return pairs


def pair_paths(root: str | Path, pairs: Iterable[Pair]) -> list[tuple[Path, Path]]:
    """Image paths of each pair under an LFW root; all files must exist."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: LFW image folder not found")
    out: list[tuple[Path, Path]] = []
    missing: list[Path] = []
    for pair in pairs:
        p1 = root / image_relpath(pair.name1, pair.index1)
        p2 = root / image_relpath(pair.name2, pair.index2)
        missing.extend(p for p in (p1, p2) if not p.is_file())
        out.append((p1, p2))
    if missing:
        unique = sorted(set(missing))
        raise UserError(
            f"{root}: {len(unique)} image(s) named in pairs.txt are missing, e.g. {unique[0]}"
        )
    return out
