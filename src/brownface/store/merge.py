"""Merge per-job shards of a store into one, checked before anything is written.

Sharded stages (variations by identity range, projection by image range) write one store per
job. Each shard records which rows of the whole it holds in its provenance, in one shape for
every stage (:func:`shard_provenance`): ``shard = {index, count, start, stop}``, rows
[start, stop). The merged file must be exactly what one job writing every row would have
produced, so a resumed or re-sharded run gives the same bytes: the merge streams blocks of rows
through the same writer as a direct write, and drops the ``shard`` entry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from brownface.store.base import (
    PathLike,
    StoreError,
    read_data,
    read_extra,
    read_provenance,
    reading,
    write_store,
)
from brownface.store.kinds import STORES, StoreBase, check_datasets

MERGEABLE = ("identities", "variations", "projections", "embeddings")


def shard_provenance(index: int, count: int, start: int, stop: int) -> dict[str, int]:
    """The ``shard`` provenance entry of shard ``index`` of ``count``, holding rows [start, stop)."""
    return {"index": int(index), "count": int(count), "start": int(start), "stop": int(stop)}


@dataclass
class _Shard:
    path: Path
    f: h5py.File
    kind: str
    dims: dict[str, int]
    rows: int
    index: int
    count: int
    start: int
    stop: int
    provenance: dict[str, Any]
    attrs: dict[str, Any]


def _open_shard(stack: ExitStack, path: Path) -> _Shard:
    f, kind, _ = stack.enter_context(reading(path))
    if kind not in MERGEABLE:
        raise StoreError(f"{path}: merge_shards merges {', '.join(MERGEABLE)} stores, found {kind}")
    cls = STORES[kind]
    dims = check_datasets(f, path, kind, cls.FIELDS)
    prov = read_provenance(f, path)
    shard = prov.pop("shard", None)
    if not isinstance(shard, dict) or not {"index", "count", "start", "stop"} <= set(shard):
        raise StoreError(
            f"{path}: not a shard (no shard {{index, count, start, stop}} in its provenance)"
        )
    rows = dims[cls.FIELDS[0].dims[0]]
    start, stop = int(shard["start"]), int(shard["stop"])
    if rows != stop - start:
        raise StoreError(
            f"{path}: holds {rows} rows, but its shard range is rows {start}..{stop - 1}"
        )
    index, count = int(shard["index"]), int(shard["count"])
    return _Shard(path, f, kind, dims, rows, index, count, start, stop, prov, read_extra(f, path))


def _check_compatible(shards: list[_Shard]) -> None:
    """Same kind, dims (but the first), attrs and provenance (but the shard) as the first."""
    first = shards[0]
    rows_dim = STORES[first.kind].FIELDS[0].dims[0]
    for s in shards[1:]:
        if s.kind != first.kind:
            raise StoreError(
                f"{s.path}: is a brownface/{s.kind} store, but {first.path} is brownface/{first.kind}"
            )
        for dim in sorted((set(first.dims) | set(s.dims)) - {rows_dim}):
            if s.dims.get(dim) != first.dims.get(dim):
                raise StoreError(
                    f"{s.path}: {dim} = {s.dims.get(dim)}, but {first.path} has "
                    f"{dim} = {first.dims.get(dim)}; shards must come from one config"
                )
        pairs = (
            ("attribute", s.attrs, first.attrs),
            ("provenance key", s.provenance, first.provenance),
        )
        for label, mine, theirs in pairs:
            for key in sorted(set(mine) | set(theirs)):
                if key not in mine or key not in theirs or _differs(mine[key], theirs[key]):
                    raise StoreError(
                        f"{s.path}: {label} {key!r} differs from {first.path}; "
                        "shards must come from one run"
                    )


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return not np.array_equal(a, b)
    return a != b


def _check_ranges(shards: list[_Shard], expected: int | None, out: Path) -> int:
    """Shards sorted by start must tile rows 0..total-1 exactly, and be every one of the
    ``count`` shards of their run; return the total."""
    counts = {s.count for s in shards}
    if len(counts) > 1:
        raise StoreError(f"{out}: cannot merge: the shards come from splits into {sorted(counts)}")
    (count,) = counts
    indices = sorted(s.index for s in shards)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        what = f"shard {missing[0]} of {count} is missing" if missing else "a shard is given twice"
        raise StoreError(f"{out}: cannot merge: {what}")
    position = 0
    for s in shards:
        if s.start != position:
            what = "overlaps the previous shard"
            if s.start > position:
                what = f"leaves rows {position}..{s.start - 1} in no shard"
            raise StoreError(f"{out}: cannot merge: {s.path} starts at row {s.start} and {what}")
        position = s.stop
    if expected is not None and position != expected:
        more = f"rows {position}..{expected - 1} are in no shard"
        if position > expected:
            more = f"they hold {position} rows"
        raise StoreError(f"{out}: cannot merge: expected {expected} rows, but {more}")
    return position


def _check_identities(shards: list[_Shard], out: Path) -> None:
    """Identity and variation shards: no identity in two shards (or twice in one)."""
    if "identity" not in {f.name for f in STORES[shards[0].kind].FIELDS}:
        return
    seen: dict[int, Path] = {}
    for s in shards:
        for identity in read_data(s.path, s.f["identity"]).astype(np.int64).tolist():
            if identity in seen:
                what = f"{s.path} contains identity {identity} twice"
                if seen[identity] != s.path:
                    what = f"{seen[identity]} and {s.path} both contain identity {identity}"
                raise StoreError(f"{out}: cannot merge shards: {what}")
            seen[identity] = s.path


def merge_shards(
    shard_paths: Sequence[PathLike],
    out: PathLike,
    expected: int | None = None,
    *,
    gzip: bool = False,
) -> Path:
    """Merge shards (any order) into one store of ``expected`` rows, streaming blocks of rows.

    Every check (kind, dims, provenance, every shard of the split present, ranges tiling the
    rows, unique identities) runs before anything is written. The merged provenance is the shards' without ``shard``, plus
    ``n_shards``.
    """
    out = Path(out)
    if not shard_paths:
        raise StoreError(f"{out}: cannot merge shards: no shard files given")
    with ExitStack() as stack:
        shards = [_open_shard(stack, Path(os.fspath(p))) for p in shard_paths]
        shards.sort(key=lambda s: (s.start, s.stop))
        _check_compatible(shards)
        total = _check_ranges(shards, expected, out)
        _check_identities(shards, out)
        cls: type[StoreBase] = STORES[shards[0].kind]
        rows_dim = cls.FIELDS[0].dims[0]
        dims = {**shards[0].dims, rows_dim: total}

        def block(start: int, stop: int) -> dict[str, np.ndarray]:
            parts: dict[str, list[np.ndarray]] = {fld.name: [] for fld in cls.FIELDS}
            for s in shards:
                lo, hi = max(start, s.start), min(stop, s.stop)
                if lo < hi:
                    for fld in cls.FIELDS:
                        sel = slice(lo - s.start, hi - s.start)
                        parts[fld.name].append(read_data(s.path, s.f[fld.name], sel))
            merged = {name: np.concatenate(arrays) for name, arrays in parts.items()}
            for fld in cls.FIELDS:
                if fld.dtype == "str":  # h5py writes strings from object arrays
                    merged[fld.name] = merged[fld.name].astype(object)
            return merged

        prov = shards[0].provenance  # without "shard": the same bytes for any split
        return write_store(out, cls.KIND, cls.FIELDS, dims, block, prov, shards[0].attrs, gzip)
