"""Checkpoints that let long loops (Langevin, dispersion, projection, training) resume bit-for-bit.

A checkpoint holds the loop's arrays, its iteration and the exact RNG states, written atomically
so a killed job leaves either the previous checkpoint or the new one, never half of one.

One rule for every stage:

* a run is identified by its fingerprint (:func:`run_key`: its parameters and the content of
  its inputs), kept in the checkpoint; a job resumes only from a checkpoint with its own
  fingerprint and otherwise starts over, so a changed parameter or input never mixes runs;
* a job never deletes its own checkpoint, not even when it finishes: Snakemake may still
  discard its outputs (a signal as the job exits), and the rerun then rewrites them from the
  final checkpoint without recomputing;
* checkpoints live under ``<results>/checkpoints/`` at the path of the job's main output
  below ``<results>/``; once a workflow run has succeeded, :func:`clear_accepted` deletes every
  checkpoint whose output exists and is newer (Snakemake accepted it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from brownface.store.base import (
    PathLike,
    StoreError,
    atomic_path,
    dumps,
    loads,
    read_attr,
    read_data,
    read_provenance,
    reading,
    write_header,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch

KIND = "checkpoint"
_ATTRS = ("iteration", "meta", "rng_json")


@dataclass(eq=False)
class Checkpoint:
    """State of a loop: named arrays, the next iteration, RNG states and free-form meta."""

    arrays: dict[str, np.ndarray]
    iteration: int
    rng: dict[str, Any]
    meta: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)


def _numeric(name: str, value: Any) -> np.ndarray:
    if "/" in name or not name:
        raise ValueError(f"checkpoint array name {name!r} must be non-empty without '/'")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufc":
        raise ValueError(f"checkpoint array {name!r} has dtype {arr.dtype}; store numbers only")
    return arr


def save_checkpoint(
    path: PathLike,
    *,
    arrays: Mapping[str, np.ndarray],
    iteration: int,
    rng: Mapping[str, Any],
    meta: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically.

    ``rng`` values that are arrays or bytes (a torch generator state) become datasets; anything
    else (numpy's bit_generator.state dict) is kept as JSON, which holds its 128-bit integers.
    """
    blobs = {k: v for k, v in rng.items() if isinstance(v, np.ndarray | bytes)}
    json_rng = {k: v for k, v in rng.items() if k not in blobs}
    data = {name: _numeric(name, arrays[name]) for name in sorted(arrays)}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write_header(f, KIND, provenance or {}, {})
        f.attrs["iteration"] = np.int64(iteration)
        f.attrs["meta"] = dumps(dict(meta))
        f.attrs["rng_json"] = dumps(json_rng)
        group = f.create_group("arrays")
        for name, arr in data.items():
            group.create_dataset(name, data=arr)
        rng_group = f.create_group("rng")
        for name in sorted(blobs):
            value = blobs[name]
            raw = np.frombuffer(value, dtype=np.uint8) if isinstance(value, bytes) else value
            ds = rng_group.create_dataset(name, data=_numeric(name, raw))
            ds.attrs["bytes"] = isinstance(value, bytes)
    return Path(path)


def _json(path: PathLike, text: Any) -> dict[str, Any]:
    try:
        value = loads(text)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{path}: checkpoint attribute is not valid JSON") from exc
    if not isinstance(value, dict):
        raise StoreError(f"{path}: checkpoint attribute is not a JSON object")
    return value


def load_checkpoint(path: PathLike, *, loop: str | None = None) -> Checkpoint:
    """Read a checkpoint; with ``loop``, refuse one whose meta says it belongs to another loop."""
    with reading(path, KIND) as (f, _, _):
        for name in _ATTRS:
            if name not in f.attrs:
                raise StoreError(f"{path}: checkpoint has no {name!r} attribute")
        for name in ("arrays", "rng"):
            if not isinstance(f.get(name), h5py.Group):
                raise StoreError(f"{path}: checkpoint has no {name!r} group")
        meta, rng = (_json(path, read_attr(path, f, k)) for k in ("meta", "rng_json"))
        arrays = {name: read_data(path, ds) for name, ds in f["arrays"].items()}
        for name, ds in f["rng"].items():
            value = read_data(path, ds)
            rng[name] = value.tobytes() if bool(ds.attrs.get("bytes", False)) else value
        iteration = int(read_attr(path, f, "iteration"))
        ckpt = Checkpoint(arrays, iteration, rng, meta, read_provenance(f, path))
    if loop is not None and ckpt.meta.get("loop") != loop:
        raise StoreError(
            f"{path}: checkpoint is for loop {ckpt.meta.get('loop')!r}, expected {loop!r}"
        )
    return ckpt


def rng_state(
    torch_gen: torch.Generator | None = None, np_gen: np.random.Generator | None = None
) -> dict[str, Any]:
    """Capture generator states as {"torch": uint8 array, "numpy": bit_generator.state}."""
    state: dict[str, Any] = {}
    if torch_gen is not None:
        state["torch"] = torch_gen.get_state().numpy().copy()
    if np_gen is not None:
        state["numpy"] = np_gen.bit_generator.state
    return state


def restore_rng(
    state: Mapping[str, Any],
    torch_gen: torch.Generator | None = None,
    np_gen: np.random.Generator | None = None,
) -> None:
    """Put generators back in the captured state so the next draws repeat exactly."""
    for key, gen in (("torch", torch_gen), ("numpy", np_gen)):
        if gen is not None and key not in state:
            raise StoreError(f"checkpoint has no {key} RNG state to restore")
    if torch_gen is not None:
        import torch

        raw = np.ascontiguousarray(np.asarray(state["torch"], dtype=np.uint8))
        try:
            torch_gen.set_state(torch.from_numpy(raw.copy()))
        except RuntimeError as exc:
            raise StoreError(f"checkpoint torch RNG state does not fit {torch_gen.device}") from exc
    if np_gen is not None:
        try:
            np_gen.bit_generator.state = state["numpy"]
        except (ValueError, TypeError, KeyError) as exc:
            found = (
                state["numpy"].get("bit_generator") if isinstance(state["numpy"], dict) else None
            )
            raise StoreError(
                f"checkpoint numpy RNG state is for {found!r}, "
                f"not {type(np_gen.bit_generator).__name__}"
            ) from exc


def load_matching_checkpoint(path: str | Path | None, loop: str, key: str) -> Checkpoint | None:
    """The checkpoint at ``path`` if it was written by this very run, else None.

    A run is identified by ``key`` (a fingerprint of its parameters and inputs, kept in
    ``meta["key"]``). A missing, unreadable or stale checkpoint means "start over", logged once,
    so a rerun after a parameter change never mixes two runs and never fails on old state.
    """
    if path is None or not Path(path).exists():
        return None
    try:
        ckpt = load_checkpoint(path, loop=loop)
    except StoreError as exc:
        log.warning("%s; starting over", exc)
        return None
    if ckpt.meta.get("key") != key:
        log.warning(
            "%s: checkpoint is from another run (parameters or inputs differ); starting over", path
        )
        return None
    return ckpt


def load_loop_state(
    path: str | Path | None, loop: str, key: str, shape: tuple[int, ...], stat_columns: int
) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(next iteration, latents ``w`` of ``shape``, statistics rows [-1, stat_columns]) of a
    sampling loop's matching checkpoint, or None (start over) if there is none or it holds
    other arrays."""
    ckpt = load_matching_checkpoint(path, loop, key)
    if ckpt is None:
        return None
    w, stats = ckpt.arrays.get("w"), ckpt.arrays.get("stats")
    if w is None or stats is None or w.shape != shape:
        log.warning("%s: checkpoint holds other arrays; starting over", path)
        return None
    return ckpt.iteration, w, stats.reshape(-1, stat_columns)


def run_key(params: Any, context: Any, arrays: Iterable[np.ndarray] = ()) -> str:
    """The fingerprint of one run of a loop: a digest of everything that determines its result.

    ``params`` is the loop's parameter dataclass (``checkpoint_every`` and the fields named in
    its ``EXECUTION_ONLY`` left out: they decide when state is saved or how it is computed,
    not what), ``context`` the other JSON values (seed,
    ranges, provenance of the networks), ``arrays`` the inputs whose bytes count.
    """
    skip = {"checkpoint_every", *getattr(params, "EXECUTION_ONLY", ())}
    settings = {k: v for k, v in dataclasses.asdict(params).items() if k not in skip}
    digest = hashlib.sha256()
    digest.update(json.dumps([settings, context], sort_keys=True, default=str).encode())
    for arr in arrays:
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def checkpoint_path(results: str, output: str) -> str:
    """The checkpoint of the job whose main output is ``output`` (a path under ``results``)."""
    rel = os.path.relpath(output, results)
    if rel.startswith(".."):
        raise ValueError(f"checkpoint_path: {output} is not under {results}")
    return os.path.join(results, "checkpoints", rel)


def clear_accepted(results: str | Path) -> list[Path]:
    """Delete the checkpoints under ``<results>/checkpoints`` whose job's output exists and is
    at least as new (see the module docstring), and leftovers of killed writes; call it only
    when no job is running. Returns what was deleted."""
    root = Path(results) / "checkpoints"
    removed = []
    for ckpt in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        output = Path(results) / ckpt.relative_to(root)
        leftover = ckpt.name.startswith(".") and ".tmp-" in ckpt.name  # a killed atomic write
        if leftover or (output.exists() and output.stat().st_mtime >= ckpt.stat().st_mtime):
            ckpt.unlink()
            removed.append(ckpt)
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed
