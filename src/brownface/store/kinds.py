"""The data stores as typed dataclasses with validated, deterministic write and read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import h5py
import numpy as np

from brownface.store.base import (
    Field,
    PathLike,
    StoreError,
    check_dtype,
    check_shapes,
    coerce,
    read_data,
    read_extra,
    read_provenance,
    reading,
    write_store,
)

S = TypeVar("S", bound="StoreBase")

UNIT_NORM_TOL = 1e-4
EMBEDDING_NORM_TOL = 1e-3  # float32 embeddings normalised by the FR model, maybe on a GPU


def check_datasets(f: h5py.File, path: PathLike, kind: str, fields: tuple[Field, ...]) -> dict:
    """Refuse a store with a missing dataset, a wrong dtype or inconsistent shapes."""
    for fld in fields:
        if not isinstance(f.get(fld.name), h5py.Dataset):
            raise StoreError(f"{path}: brownface/{kind} store has no dataset {fld.name!r}")
        check_dtype(path, fld, f[fld.name].dtype)
    return check_shapes(path, fields, {fld.name: f[fld.name].shape for fld in fields})


def check_unit_rows(
    label: PathLike, what: str, rows: np.ndarray, names: np.ndarray, tol: float
) -> None:
    """Refuse the first row whose norm is not 1 within ``tol``, naming it."""
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    bad = np.nonzero(~(np.abs(norms - 1.0) <= tol))[0]
    if bad.size:
        i = int(bad[0])
        raise StoreError(
            f"{label}: {what} {i} ({names[i]!r}) has norm {norms[i]:.6g}, expected unit-norm rows"
        )


class StoreBase:
    """Shared write/read of the data stores; subclasses declare KIND, FIELDS and the arrays."""

    KIND: ClassVar[str]
    FIELDS: ClassVar[tuple[Field, ...]]
    provenance: dict[str, Any]
    attrs: dict[str, Any]

    def arrays(self) -> dict[str, np.ndarray]:
        return {fld.name: getattr(self, fld.name) for fld in self.FIELDS}

    def __len__(self) -> int:
        return len(getattr(self, self.FIELDS[0].name))

    def write(self, path: PathLike, *, gzip: bool = False) -> Path:
        """Validate shapes and dtypes, then write atomically; attrs may fix dims like w_dim."""
        arrays = {fld.name: coerce(path, fld, getattr(self, fld.name)) for fld in self.FIELDS}
        preset = {k: v for k, v in self.attrs.items() if _is_dim(self.FIELDS, k, v)}
        shapes = {name: a.shape for name, a in arrays.items()}
        dims = check_shapes(path, self.FIELDS, shapes, preset)
        self.check_values(path, arrays)
        return write_store(
            path,
            self.KIND,
            self.FIELDS,
            dims,
            lambda a, b: {name: arr[a:b] for name, arr in arrays.items()},
            self.provenance,
            self.attrs,
            gzip,
        )

    @classmethod
    def read(cls: type[S], path: PathLike) -> S:
        """Load the whole store, refusing files of another kind, version or layout."""
        with reading(path, cls.KIND) as (f, _, _):
            check_datasets(f, path, cls.KIND, cls.FIELDS)
            arrays = {fld.name: _load(path, f, fld) for fld in cls.FIELDS}
            cls.check_values(path, arrays)
            return cls(**arrays, provenance=read_provenance(f, path), attrs=read_extra(f, path))

    @classmethod
    def check_values(cls, label: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
        """Kind-specific content checks beyond shapes (none by default)."""


def _is_dim(fields: tuple[Field, ...], key: str, value: Any) -> bool:
    return isinstance(value, int | np.integer) and any(key in fld.dims for fld in fields)


def _load(path: PathLike, f: h5py.File, fld: Field, sel: Any = ()) -> np.ndarray:
    arr = read_data(path, f[fld.name], sel)
    return arr if fld.dtype == "str" else arr.astype(np.float32 if fld.dtype == "f32" else np.int64)


def _f32(name: str, *dims: str) -> Field:
    return Field(name, "f32", dims)


def _i64(name: str, *dims: str) -> Field:
    return Field(name, "i64", dims)


def _str(name: str, *dims: str) -> Field:
    return Field(name, "str", dims)


@dataclass(eq=False)
class IdentityStore(StoreBase):
    """One latent and one FR embedding per identity (the sampled identities)."""

    KIND: ClassVar[str] = "identities"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        _i64("identity", "N"),
        _f32("w", "N", "w_dim"),
        _f32("embedding", "N", "e_dim"),
    )
    identity: np.ndarray
    w: np.ndarray
    embedding: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class VariationStore(StoreBase):
    """V latents and embeddings per identity (the images of each synthetic person)."""

    KIND: ClassVar[str] = "variations"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        _i64("identity", "N"),
        _f32("w", "N", "V", "w_dim"),
        _f32("embedding", "N", "V", "e_dim"),
    )
    identity: np.ndarray
    w: np.ndarray
    embedding: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class ProjectionStore(StoreBase):
    """Real images projected into the latent space, with their labels (for covariates)."""

    KIND: ClassVar[str] = "projections"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        _f32("w", "M", "w_dim"),
        _f32("loss", "M"),
        _str("path", "M"),
        _i64("subject", "M"),
        _i64("session", "M"),
        _i64("recording", "M"),
        _i64("flash", "M"),
        _str("camera", "M"),
        _str("expression", "M"),
    )
    w: np.ndarray
    loss: np.ndarray
    path: np.ndarray
    subject: np.ndarray
    session: np.ndarray
    recording: np.ndarray
    flash: np.ndarray
    camera: np.ndarray
    expression: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class CovariateStore(StoreBase):
    """Unit-norm latent directions (pose, expression, ...) with their fit statistics."""

    KIND: ClassVar[str] = "covariates"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        _str("name", "D"),
        _f32("direction", "D", "w_dim"),
        *(
            _f32(n, "D")
            for n in ("scale", "pos_mean", "pos_std", "neg_mean", "neg_std", "accuracy")
        ),
        _i64("n_pos", "D"),
        _i64("n_neg", "D"),
    )
    name: np.ndarray
    direction: np.ndarray
    scale: np.ndarray
    pos_mean: np.ndarray
    pos_std: np.ndarray
    neg_mean: np.ndarray
    neg_std: np.ndarray
    accuracy: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def check_values(cls, label: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
        """Directions are applied as w + t * d, so a non-unit d silently rescales every edit."""
        check_unit_rows(label, "direction", arrays["direction"], arrays["name"], UNIT_NORM_TOL)


@dataclass(eq=False)
class EmbeddingStore(StoreBase):
    """FR embeddings of a face collection (real faces, e.g. the generator's training set), one
    row per image with its identity label and path. Identities are the distinct labels;
    :meth:`identity_means` derives them on read, so that shards (image ranges that keep an
    identity's images together or not) merge by tiling rows like every other store."""

    KIND: ClassVar[str] = "embeddings"
    FIELDS: ClassVar[tuple[Field, ...]] = (
        _str("label", "M"),
        _str("path", "M"),
        _f32("embedding", "M", "e_dim"),
    )
    label: np.ndarray
    path: np.ndarray
    embedding: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def check_values(cls, label: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
        """Embeddings are compared by angle; a row that is not unit length is not one."""
        check_unit_rows(label, "embedding", arrays["embedding"], arrays["path"], EMBEDDING_NORM_TOL)

    def identity_means(self) -> tuple[np.ndarray, np.ndarray]:
        """The identities (labels in order of first appearance) and each one's normalised mean
        embedding [I, e_dim] float32 (summed in float64, so the order of rows does not
        matter beyond rounding)."""
        labels, first, inverse = np.unique(self.label, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # np.unique sorts; restore first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        sums = np.zeros((labels.size, self.embedding.shape[1]), dtype=np.float64)
        np.add.at(sums, rank[inverse.ravel()], self.embedding.astype(np.float64))
        sums /= np.linalg.norm(sums, axis=1, keepdims=True)
        return labels[order].astype(str), sums.astype(np.float32)


STORES: dict[str, type[StoreBase]] = {
    cls.KIND: cls
    for cls in (IdentityStore, VariationStore, ProjectionStore, CovariateStore, EmbeddingStore)
}


def variation_index(path: PathLike) -> tuple[np.ndarray, int]:
    """The identity column and V of a variations store, reading no latents: enough to plan
    jobs by identity range before any of them loads its part."""
    cls = VariationStore
    with reading(path, cls.KIND) as (f, _, _):
        dims = check_datasets(f, path, cls.KIND, cls.FIELDS)
        return read_data(path, f["identity"]).astype(np.int64), int(dims["V"])


def read_variations(path: PathLike, start: int, stop: int) -> VariationStore:
    """Load only identities start <= id < stop, so a 10,000 x 64 x 512 file needs no full read."""
    if start > stop:
        raise ValueError(f"read_variations: start {start} > stop {stop}")
    cls = VariationStore
    with reading(path, cls.KIND) as (f, _, _):
        check_datasets(f, path, cls.KIND, cls.FIELDS)
        ids = read_data(path, f["identity"]).astype(np.int64)
        rows = np.nonzero((ids >= start) & (ids < stop))[0]
        sel: slice | np.ndarray = rows
        if rows.size == 0:
            sel = slice(0, 0)
        elif rows[-1] - rows[0] + 1 == rows.size:
            sel = slice(int(rows[0]), int(rows[-1]) + 1)
        arrays = {fld.name: _load(path, f, fld, sel) for fld in cls.FIELDS}
        return cls(**arrays, provenance=read_provenance(f, path), attrs=read_extra(f, path))
