"""Shared machinery of the HDF5 stores: atomic writes, headers, validation, deterministic layout.

Every store is written so that identical inputs give identical bytes: no timestamps, a chunk
layout that depends only on the shapes, and a fixed order of attribute, dataset and chunk writes.
That lets Snakemake and users compare outputs with a checksum.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from brownface import __version__
from brownface.errors import UserError

PathLike = str | os.PathLike[str]

FORMAT_PREFIX = "brownface/"
VERSION = 1
KINDS = ("identities", "variations", "projections", "covariates", "embeddings", "checkpoint")
RESERVED_ATTRS = frozenset({"format", "version", "provenance"})

CHUNK_BYTES = 128 * 1024  # one variations identity [1, 64, 512] float32
MAX_CHUNK_BYTES = 4 * 1024 * 1024
BLOCK_BYTES = 64 * 1024 * 1024  # rows written (and read when merging) per step
_STR_ITEMSIZE = 16  # bytes of a variable-length string reference inside a chunk


class StoreError(UserError):
    """A store file that cannot be written or read as asked; the message is one line."""


def corrupt(path: PathLike) -> StoreError:
    return StoreError(f"{path}: not a readable HDF5 store (truncated or corrupt?)")


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it into place only if the body succeeds.

    A killed or failing job thus never leaves a half-written output that looks finished.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory: build it under a temporary name, then rename.

    An existing directory at ``path`` is replaced only once the new one is complete.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a JSON attribute")


def _json_hook(obj: dict[str, Any]) -> Any:
    if "__ndarray__" in obj and "dtype" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys) so equal dicts give equal bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=_json_default)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_json_hook)


def write_header(
    f: h5py.File, kind: str, provenance: Mapping[str, Any], extra: Mapping[str, Any]
) -> None:
    """Root attributes in a fixed order; the package version is added to the provenance."""
    f.attrs["format"] = FORMAT_PREFIX + kind
    f.attrs["version"] = np.int64(VERSION)
    f.attrs["provenance"] = dumps({**provenance, "package_version": __version__})
    for key in sorted(extra):
        if key in RESERVED_ATTRS:
            raise ValueError(f"attribute name {key!r} is reserved")
        value = extra[key]
        if not isinstance(value, bool | int | float | str | np.generic):
            raise TypeError(f"attribute {key!r} must be a scalar, got {type(value).__name__}")
        f.attrs[key] = value


def read_attr(path: PathLike, f: h5py.File, name: str) -> Any:
    try:
        value = f.attrs.get(name)
    except (OSError, RuntimeError, KeyError) as exc:
        raise corrupt(path) from exc
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


def check_header(f: h5py.File, path: PathLike, kind: str | None = None) -> tuple[str, int]:
    """Refuse stores of another kind or a newer version; return (kind, version)."""
    fmt = read_attr(path, f, "format")
    want = f"a {FORMAT_PREFIX}{kind}" if kind else "a brownface"
    if fmt is None:
        raise StoreError(f"{path}: expected {want} store, found no format attribute")
    if not isinstance(fmt, str) or fmt.removeprefix(FORMAT_PREFIX) not in KINDS:
        raise StoreError(f"{path}: expected {want} store, found {fmt!r}")
    found = fmt.removeprefix(FORMAT_PREFIX)
    if kind is not None and found != kind:
        raise StoreError(f"{path}: expected {want} store, found {fmt!r}")
    version = read_attr(path, f, "version")
    if not isinstance(version, int) or version < 1:
        raise StoreError(f"{path}: {fmt} has no valid version attribute (found {version!r})")
    if version > VERSION:
        raise StoreError(
            f"{path}: {fmt} version {version} is newer than this brownface supports "
            f"({VERSION}); upgrade brownface"
        )
    return found, version


@contextmanager
def reading(path: PathLike, kind: str | None = None) -> Iterator[tuple[h5py.File, str, int]]:
    """Open a store read-only after checking it is HDF5 with the expected header."""
    if not Path(path).is_file():
        raise StoreError(f"{path}: no such store file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise corrupt(path) from exc
    with f:
        found, version = check_header(f, path, kind)
        yield f, found, version


def open_store(path: PathLike) -> tuple[str, int]:
    """Detect the kind and version of a store (for the CLI), refusing anything else."""
    with reading(path) as (_, kind, version):
        return kind, version


def read_provenance(f: h5py.File, path: PathLike) -> dict[str, Any]:
    text = read_attr(path, f, "provenance")
    if not isinstance(text, str):
        raise StoreError(f"{path}: store has no provenance attribute")
    try:
        prov = loads(text)
    except ValueError as exc:
        raise StoreError(f"{path}: provenance attribute is not valid JSON") from exc
    if not isinstance(prov, dict):
        raise StoreError(f"{path}: provenance attribute is not a JSON object")
    return prov


def read_extra(f: h5py.File, path: PathLike) -> dict[str, Any]:
    return {k: read_attr(path, f, k) for k in sorted(f.attrs) if k not in RESERVED_ATTRS}


def read_data(path: PathLike, ds: h5py.Dataset, sel: Any = ()) -> np.ndarray:
    """Read a selection, turning HDF5 read failures into the one-line corrupt-file error."""
    try:
        if h5py.check_string_dtype(ds.dtype) is not None:
            return np.asarray(ds.asstr()[sel], dtype=object).astype(str)
        return np.asarray(ds[sel])
    except (OSError, RuntimeError, KeyError) as exc:
        raise corrupt(path) from exc


@dataclass(frozen=True)
class Field:
    """One dataset of a store kind: name, element type ("f32", "i64", "str") and named dims."""

    name: str
    dtype: str
    dims: tuple[str, ...]


_NUMPY = {"f32": np.dtype(np.float32), "i64": np.dtype(np.int64)}
_KINDS_OK = {"f32": "f", "i64": "iu"}
_NAMES = {"f32": "float32", "i64": "int64", "str": "str"}


def coerce(label: PathLike, fld: Field, value: Any) -> np.ndarray:
    """Convert to the stored dtype, refusing values of the wrong type (not just wrong size)."""
    arr = np.asarray(value)
    if fld.dtype == "str":
        if arr.dtype.kind == "U" or (
            arr.dtype.kind == "O" and all(isinstance(x, str) for x in arr.flat)
        ):
            return arr.astype(object)
    elif arr.dtype.kind in _KINDS_OK[fld.dtype]:
        return arr.astype(_NUMPY[fld.dtype], copy=False)
    raise StoreError(f"{label}: {fld.name} must be {_NAMES[fld.dtype]}, got {arr.dtype}")


def check_dtype(label: PathLike, fld: Field, dtype: np.dtype) -> None:
    is_str = h5py.check_string_dtype(dtype) is not None
    ok = is_str if fld.dtype == "str" else (not is_str and dtype.kind in _KINDS_OK[fld.dtype])
    if not ok:
        got = "str" if is_str else str(dtype)
        raise StoreError(
            f"{label}: dataset {fld.name} has dtype {got}, expected {_NAMES[fld.dtype]}"
        )


def check_shapes(
    label: PathLike,
    fields: tuple[Field, ...],
    shapes: Mapping[str, tuple[int, ...]],
    dims: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Check all datasets agree on their named dims; return the dims (the first use fixes one)."""
    known = dict(dims or {})
    for fld in fields:
        shape = tuple(int(n) for n in shapes[fld.name])
        if len(shape) == len(fld.dims):
            for dim, n in zip(fld.dims, shape, strict=True):
                known.setdefault(dim, n)
        want = tuple(known.get(dim, dim) for dim in fld.dims)
        if want != shape:
            raise StoreError(
                f"{label}: {fld.name} must have shape [{', '.join(fld.dims)}] = "
                f"[{', '.join(map(str, want))}], got [{', '.join(map(str, shape))}]"
            )
    return known


def _pow2_floor(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
    """Chunks of whole rows (~128 KiB, at most 4 MiB); a function of the shape only."""
    if not shape or 0 in shape:
        return None
    row_bytes = itemsize * prod(shape[1:])
    chunk = [min(shape[0], _pow2_floor(CHUNK_BYTES // row_bytes)), *shape[1:]]
    while itemsize * prod(chunk) > MAX_CHUNK_BYTES:
        big = max(range(1, len(chunk)), key=lambda i: chunk[i])
        chunk[big] = (chunk[big] + 1) // 2
    return tuple(chunk)


def _create(f: h5py.File, fld: Field, shape: tuple[int, ...], gzip: bool) -> h5py.Dataset:
    dtype = h5py.string_dtype() if fld.dtype == "str" else _NUMPY[fld.dtype]
    itemsize = _STR_ITEMSIZE if fld.dtype == "str" else dtype.itemsize
    chunks = chunk_shape(shape, itemsize)
    opts: dict[str, Any] = {}
    if gzip and chunks is not None:
        opts = {"compression": "gzip", "compression_opts": 4, "shuffle": fld.dtype != "str"}
    return f.create_dataset(fld.name, shape=shape, dtype=dtype, chunks=chunks, **opts)


def write_store(
    path: PathLike,
    kind: str,
    fields: tuple[Field, ...],
    dims: Mapping[str, int],
    rows: Callable[[int, int], Mapping[str, np.ndarray]],
    provenance: Mapping[str, Any],
    extra: Mapping[str, Any],
    gzip: bool = False,
) -> Path:
    """Write a store atomically, block of rows by block of rows.

    Direct writes and shard merges both go through here, so the order of chunk allocation,
    and therefore the bytes, is the same however the rows were produced.
    """
    shapes = {fld.name: tuple(dims[d] for d in fld.dims) for fld in fields}
    n = shapes[fields[0].name][0]
    row_bytes = sum(
        (_STR_ITEMSIZE if fld.dtype == "str" else 8) * prod(shapes[fld.name][1:]) for fld in fields
    )
    step = _pow2_floor(BLOCK_BYTES // max(row_bytes, 1))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write_header(f, kind, provenance, extra)
        dsets = {fld.name: _create(f, fld, shapes[fld.name], gzip) for fld in fields}
        for start in range(0, n, step):
            stop = min(n, start + step)
            block = rows(start, stop)
            for name, ds in dsets.items():
                ds[start:stop] = block[name]
    return Path(path)
