"""The dataset layout every FR training reads: ``images/`` plus ``index.csv``.

A dataset root holds ``images/<identity:06d>/<label>.<ext>`` and ``index.csv`` with columns
``path,identity,label,sha256``: the image path relative to the root, its integer identity, a
label unique within the identity, and the sha256 of the image file. brownface's render and
world stages write all four; a dataset made elsewhere may leave out ``sha256``. Classes are the
sorted distinct identities.

:func:`dataset_fingerprint` says what the images ARE, not only how they are named: a
re-rendered dataset with the same paths and labels but other pixels has another fingerprint,
so a trainer never resumes a checkpoint made on other images.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brownface.errors import UserError

INDEX_COLUMNS = ("path", "identity", "label")
DIGEST_COLUMN = "sha256"


@dataclass
class DatasetIndex:
    """The rows of ``index.csv`` and their class numbers."""

    root: Path
    paths: list[str]
    identities: np.ndarray  # int64 [N]
    labels: list[str]
    classes: np.ndarray  # int64 [N], 0..num_classes-1 in sorted identity order
    sha256: list[str] | None = None  # digest of each image file, when the index lists them

    @property
    def num_classes(self) -> int:
        return int(self.classes.max()) + 1 if len(self.classes) else 0

    def __len__(self) -> int:
        return len(self.paths)


class IndexWriter:
    """Writes images under a dataset root and collects their index rows (with digests)."""

    def __init__(self, root: Path) -> None:
        self.root, self.rows = Path(root), []

    def add(self, rel: str, data: bytes, identity: int, label: str) -> None:
        """Write the image file ``rel`` (relative to the root) and record its row."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.rows.append((rel, int(identity), label, hashlib.sha256(data).hexdigest()))

    def link(self, rel: str, source: Path, identity: int, label: str, sha256: str) -> None:
        """Place an existing image file at ``rel`` (hard link, else a copy) and record its row:
        merging rendered shards then costs no image bytes on one file system."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(Path(source), path)
        self.rows.append((rel, int(identity), label, sha256))

    def write(self) -> None:
        """``index.csv``, sorted by path."""
        frame = pd.DataFrame(sorted(self.rows), columns=[*INDEX_COLUMNS, DIGEST_COLUMN])
        frame.to_csv(self.root / "index.csv", index=False, lineterminator="\n")


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link ``source`` to ``dest``; copy the bytes where links are impossible (another
    file system, or one without links)."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def read_index(root: str | Path, allow_empty: bool = False) -> DatasetIndex:
    """Read ``<root>/index.csv``; refuse a missing file, wrong columns or missing images, and
    an index of no images unless ``allow_empty`` (a render shard may hold no identity)."""
    root = Path(root)
    path = root / "index.csv"
    if not path.is_file():
        raise UserError(f"{path}: no index.csv; expected a dataset (images/ + index.csv)")
    try:
        frame = pd.read_csv(
            path, dtype={"path": str, "identity": "int64", "label": str, DIGEST_COLUMN: str}
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: not a valid index ({str(exc).splitlines()[0]})") from None
    columns = tuple(frame.columns)
    if columns not in (INDEX_COLUMNS, (*INDEX_COLUMNS, DIGEST_COLUMN)):
        raise UserError(
            f"{path}: expected columns {','.join(INDEX_COLUMNS)}[,{DIGEST_COLUMN}], "
            f"got {','.join(map(str, columns))}"
        )
    if frame.empty and not allow_empty:
        raise UserError(f"{path}: the index lists no images")
    missing = next((p for p in frame["path"] if not (root / p).is_file()), None)
    if missing is not None:
        raise UserError(f"{path}: lists {missing}, which does not exist under {root}")
    identities = frame["identity"].to_numpy(np.int64)
    _, classes = np.unique(identities, return_inverse=True)
    digests = frame[DIGEST_COLUMN].tolist() if DIGEST_COLUMN in frame else None
    return DatasetIndex(
        root, frame["path"].tolist(), identities, frame["label"].tolist(), classes, digests
    )


def dataset_fingerprint(index: DatasetIndex) -> str:
    """sha256 over every row (path, identity, label, sha256 of the image bytes).

    The image digests come from the index when it lists them; otherwise every image file is
    read and hashed here (once per training run).
    """
    digest = hashlib.sha256()
    for i, rel in enumerate(index.paths):
        if index.sha256 is not None:
            image = index.sha256[i]
        else:
            image = hashlib.sha256((index.root / rel).read_bytes()).hexdigest()
        digest.update(f"{rel}\t{index.identities[i]}\t{index.labels[i]}\t{image}\n".encode())
    return digest.hexdigest()
