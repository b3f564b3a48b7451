"""Human-readable description of any store, for ``brownface inspect FILE``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import h5py

from brownface.store.base import PathLike, dumps, read_extra, read_provenance, reading
from brownface.store.checkpoint import Checkpoint, load_checkpoint
from brownface.store.kinds import STORES, StoreBase, check_datasets

_ITEMS = {"N": "identities", "M": "images", "D": "directions"}


def read_any(path: PathLike) -> StoreBase | Checkpoint:
    """Read a store of whatever kind it is (detected from its format attribute)."""
    with reading(path) as (_, kind, _):
        pass
    return load_checkpoint(path) if kind == "checkpoint" else STORES[kind].read(path)


def _datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    found: list[tuple[str, h5py.Dataset]] = []
    f.visititems(
        lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def _dtype(ds: h5py.Dataset) -> str:
    return "str" if h5py.check_string_dtype(ds.dtype) is not None else str(ds.dtype)


def summarize(path: PathLike) -> str:
    """Kind, version, sizes, every dataset's shape and dtype, attributes and provenance."""
    with reading(path) as (f, kind, version):
        lines = [f"{path}", f"format: brownface/{kind}, version {version}"]
        if kind == "checkpoint":
            ckpt = load_checkpoint(path)
            lines.append(f"iteration: {ckpt.iteration}")
            lines.append(f"meta: {dumps(ckpt.meta)}")
            lines.append(f"rng: {', '.join(sorted(ckpt.rng)) or '(none)'}")
        else:
            dims = check_datasets(f, path, kind, STORES[kind].FIELDS)
            first = STORES[kind].FIELDS[0].dims[0]
            lines.append(f"items: {dims[first]} {_ITEMS[first]}")
            lines.append("dims: " + ", ".join(f"{k}={v}" for k, v in dims.items()))
        datasets = _datasets(f)
        width = max((len(name) for name, _ in datasets), default=0)
        lines.append("datasets:")
        for name, ds in datasets:
            shape = ", ".join(map(str, ds.shape))
            lines.append(f"  {name:<{width}}  [{shape}]  {_dtype(ds)}")
        extra: dict[str, Any] = read_extra(f, path)
        for key in ("iteration", "meta", "rng_json") if kind == "checkpoint" else ():
            extra.pop(key, None)
        if extra:
            lines.append("attributes: " + ", ".join(f"{k}={v!r}" for k, v in extra.items()))
        prov = read_provenance(f, path)
    lines.append("provenance:")
    lines.append(json.dumps(prov, indent=2, sort_keys=True, ensure_ascii=False, default=str))
    return "\n".join(lines)


def digests(path: PathLike) -> dict[str, str]:
    """sha256 of every dataset's values (strings as UTF-8 lines), by dataset name.

    The values only, not the file: stores whose provenance differs (another results folder,
    another package version) but whose arrays are the same bytes have the same digests, which
    is how a refactor proves it changed no result.
    """
    out = {}
    with reading(path) as (f, _, _):
        for name, ds in _datasets(f):
            if h5py.check_string_dtype(ds.dtype) is not None:
                data = "\n".join(ds.asstr()[()].tolist()).encode()
            else:
                data = ds[()].tobytes()
            out[name] = hashlib.sha256(data).hexdigest()
    return out
