"""Merge per-job shards of identities or variations into one store, checked before writing.

Sampling runs as many Snakemake jobs; the merged file must be exactly what one job writing all
identities would have produced, so a resumed or re-sharded run gives the same bytes.
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
from brownface.store.kinds import IdentityStore, StoreBase, VariationStore, check_datasets

MERGEABLE: dict[str, type[StoreBase]] = {"identities": IdentityStore, "variations": VariationStore}


@dataclass
class _Shard:
    path: Path
    f: h5py.File
    kind: str
    dims: dict[str, int]
    ids: np.ndarray
    provenance: dict[str, Any]
    attrs: dict[str, Any]


def _open_shard(stack: ExitStack, path: Path) -> _Shard:
    f, kind, _ = stack.enter_context(reading(path))
    if kind not in MERGEABLE:
        raise StoreError(
            f"{path}: merge_shards merges identities or variations stores, found {kind}"
        )
    dims = check_datasets(f, path, kind, MERGEABLE[kind].FIELDS)
    ids = read_data(path, f["identity"]).astype(np.int64)
    prov = read_provenance(f, path)
    prov.pop("shard", None)
    return _Shard(path, f, kind, dims, ids, prov, read_extra(f, path))


def _check_compatible(shards: list[_Shard]) -> None:
    """Same kind, dims (except N), attrs and provenance (except the shard key) as the first."""
    first = shards[0]
    for s in shards[1:]:
        if s.kind != first.kind:
            raise StoreError(
                f"{s.path}: is a brownface/{s.kind} store, but {first.path} is brownface/{first.kind}"
            )
        for dim in sorted((set(first.dims) | set(s.dims)) - {"N"}):
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


def _index(shards: list[_Shard], expected: int | None, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """Map each output row (= identity) to (shard, row); refuse overlaps and gaps."""
    ids = np.concatenate([s.ids for s in shards])
    owner = np.concatenate([np.full(s.ids.size, i, dtype=np.int64) for i, s in enumerate(shards)])
    rows = np.concatenate([np.arange(s.ids.size, dtype=np.int64) for s in shards])
    order = np.argsort(ids, kind="stable")
    ids, owner, rows = ids[order], owner[order], rows[order]
    dup = np.nonzero(ids[1:] == ids[:-1])[0]
    if dup.size:
        i = int(dup[0])
        a, b = shards[owner[i]].path, shards[owner[i + 1]].path
        what = f"{a} contains identity {ids[i]} twice"
        if a != b:
            what = f"{a} and {b} both contain identity {ids[i]}"
        raise StoreError(f"{out}: cannot merge shards: {what}")
    n = expected if expected is not None else int(ids[-1]) + 1 if ids.size else 0
    if ids.size and (ids[0] < 0 or ids[-1] >= n):
        bad = int(ids[0] if ids[0] < 0 else ids[-1])
        path = shards[owner[0 if ids[0] < 0 else -1]].path
        raise StoreError(
            f"{out}: cannot merge shards: {path} has identity {bad}, outside 0..{n - 1}"
        )
    if ids.size != n:
        mismatch = np.nonzero(ids != np.arange(ids.size))[0]
        missing = int(mismatch[0]) if mismatch.size else ids.size
        raise StoreError(
            f"{out}: cannot merge shards: identity {missing} is in none of the "
            f"{len(shards)} shards (expected identities 0..{n - 1})"
        )
    return owner, rows


def _take(shard: _Shard, name: str, rows: np.ndarray) -> np.ndarray:
    """Read rows of one shard in the given order (a slice when contiguous, as is usual)."""
    ds = shard.f[name]
    if rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1):
        return read_data(shard.path, ds, slice(int(rows[0]), int(rows[-1]) + 1))
    order = np.argsort(rows)
    data = read_data(shard.path, ds, rows[order])
    out = np.empty_like(data)
    out[order] = data
    return out


def merge_shards(
    shard_paths: Sequence[PathLike],
    out: PathLike,
    expected: int | None = None,
    *,
    gzip: bool = False,
) -> Path:
    """Merge shards into one store sorted by identity, streaming blocks of rows.

    All checks (kind, dims, provenance, disjoint identities, no gaps) run before anything is
    written. The merged provenance drops the per-shard ``shard`` key and records ``n_shards``.
    """
    out = Path(out)
    if not shard_paths:
        raise StoreError(f"{out}: cannot merge shards: no shard files given")
    with ExitStack() as stack:
        shards = [_open_shard(stack, Path(os.fspath(p))) for p in shard_paths]
        _check_compatible(shards)
        owner, rows = _index(shards, expected, out)
        cls = MERGEABLE[shards[0].kind]
        dims = {**shards[0].dims, "N": int(owner.size)}

        def block(start: int, stop: int) -> dict[str, np.ndarray]:
            own, sub = owner[start:stop], rows[start:stop]
            result: dict[str, np.ndarray] = {}
            for fld in cls.FIELDS:
                shape = (stop - start, *(dims[d] for d in fld.dims[1:]))
                arr = np.empty(shape, dtype=np.int64 if fld.dtype == "i64" else np.float32)
                for i in np.unique(own):
                    mask = own == i
                    arr[mask] = _take(shards[int(i)], fld.name, sub[mask])
                result[fld.name] = arr
            return result

        prov = {**shards[0].provenance, "n_shards": len(shards)}
        return write_store(out, cls.KIND, cls.FIELDS, dims, block, prov, shards[0].attrs, gzip)
