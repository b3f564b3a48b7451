"""The variations stage: Dispersion or DisCo for a shard of identities, resumable.

``sample_variations`` reads identities [start, stop) of identities.h5 and writes a variations
shard with V = A + 1 latents and embeddings per identity: variation 0 is the reference itself
(its stored w and embedding), variations 1..A the sampled ones, with embeddings recomputed for
their final latents. Shards are merged with ``brownface.store.merge_shards``.

Sharding cannot change a result:

- every random draw is seeded by (seed, stage, identity[, iteration]) (``dispersion.py``);
- every per-identity quantity (forces, adaptive dt) is computed from that identity alone;
- the networks run on fixed groups of ``params.group_size`` consecutive identities (rows of
  identities.h5), group g being rows [g * group_size, (g + 1) * group_size), whatever the
  shard. Kernels may round differently for another batch shape, so a shard whose range does not
  fall on group boundaries also computes the rest of its first and last group and drops them.
  ``shard_range(n, shards, k, align=params.group_size)`` gives ranges on group boundaries.

One shard and any number of merged shards thus give identical arrays (on the same hardware and
thread count).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from brownface.errors import UserError
from brownface.runlog import progress
from brownface.sampling.disco import DIRECTION_KINDS, disco_directions
from brownface.sampling.dispersion import (
    COS_CLAMP,
    VariationParams,
    angle_to,
    dispersion_step,
    iteration_noise,
    start_latents,
    start_noise,
    state_stats,
)
from brownface.sharding import shard_range  # noqa: F401 - part of this module's API
from brownface.store import (
    IdentityStore,
    VariationStore,
    atomic_path,
    load_loop_state,
    save_checkpoint,
)

__all__ = ["STAT_COLUMNS", "VariationParams", "sample_variations", "shard_range"]

log = logging.getLogger(__name__)

LOOP = "variations"
STAT_COLUMNS = (
    "iteration",
    "angle_mean",  # angle to the reference embedding (rad), mean over variations
    "angle_min",
    "angle_max",
    "intra_angle_mean",  # mean pairwise angle between the variations of an identity
    "latent_spread",  # mean pairwise ||w_a - w_b|| within an identity
    "dist_w_avg",  # mean ||w_a - w_avg||
    "force_embedding",  # mean norm of each force
    "force_repulsion",
    "force_global",
    "force_noise",
    "dt",  # mean over identities (equal for a fixed timestep)
    "wall_time",  # seconds this iteration took
)
_MINIMA, _MAXIMA = {"angle_min"}, {"angle_max"}


def sample_variations(
    embedder: nn.Module,  # LatentEmbedder: w [B, w_dim] -> raw embeddings, with w_avg, w_dim
    params: VariationParams,
    identities_path: Path | str,  # identities.h5 (reference latents and embeddings)
    seed: int,  # config seed; with the identity, it seeds every draw
    out: Path | str,  # the variations shard to write
    start: int,  # first row of identities.h5 in this shard
    stop: int,  # one past the last row
    covariates_path: Path | str | None = None,  # covariates.h5, required by DisCo
    stats_out: Path | str | None = None,  # per-iteration CSV table; None = none
    checkpoint: Path | str | None = None,  # checkpoint file of this shard; None = no resume
    provenance: Mapping[str, Any] | None = None,  # recorded in the store (and the checkpoint)
    abort_fn: Callable[[], bool] | None = None,  # checked after each iteration; True = stop
) -> None:
    """Sample A variations of identities [start, stop) and write them as a variations shard.

    With ``checkpoint``, the state is saved every ``params.checkpoint_every`` iterations and on
    abort; a rerun resumes from it (bit-identical to an uninterrupted run), a checkpoint of other
    parameters or inputs is ignored with a warning, and it is deleted once ``out`` is written.
    """
    check_eval_mode(embedder)
    device = embedder.w_avg.device
    a = params.variations

    # Load the references and the DisCo directions.
    store = _read_references(embedder, identities_path, start, stop)
    n, w_dim = store.w.shape
    directions = None
    if params.algorithm == "disco":
        if covariates_path is None:
            raise UserError("variations: algorithm disco needs a covariates.h5 (none given)")
        directions = disco_directions(covariates_path, params, w_dim)

    # The groups to compute: whole groups covering [start, stop).
    gs = params.group_size
    lo, hi = (start // gs * gs, min(-(-stop // gs) * gs, n)) if stop > start else (start, start)
    groups = [(g - lo, min(g + gs, hi) - lo) for g in range(lo, hi, gs)]
    keep = slice(start - lo, stop - lo)
    ids = torch.from_numpy(store.identity[lo:hi])
    w_ref = torch.from_numpy(store.w[lo:hi]).to(device)
    e_ref = torch.from_numpy(store.embedding[lo:hi]).to(device)
    log.info("%s [%d, %d): groups of %d over [%d, %d)", params.algorithm, start, stop, gs, lo, hi)

    # Start, or resume.
    key = _fingerprint(params, seed, start, stop, store, lo, hi, directions, provenance)
    resumed = load_loop_state(checkpoint, LOOP, key, (hi - lo, a, w_dim), len(STAT_COLUMNS))
    if resumed is None:
        first, rows = 0, []
        xi, u = start_noise(
            seed, ids, a, w_dim, len(DIRECTION_KINDS) if directions is not None else 0
        )
        dirs = None if directions is None else directions.to(device)
        w = start_latents(w_ref, xi.to(device), params.sigma, u.to(device), dirs)
    else:
        first, w_np, stats_np = resumed
        w = torch.from_numpy(w_np.astype(np.float32)).to(device)
        rows = [dict(zip(STAT_COLUMNS, r)) for r in stats_np]
        log.info("variations: resuming from %s at iteration %d", checkpoint, first)

    def save(iteration: int) -> None:
        stats = np.array([[r[c] for c in STAT_COLUMNS] for r in rows], dtype=np.float64)
        save_checkpoint(
            checkpoint,
            arrays={"w": w.cpu().numpy(), "stats": stats.reshape(len(rows), len(STAT_COLUMNS))},
            iteration=iteration,
            rng={},  # nothing to restore: every draw is seeded by (identity, iteration)
            meta={"loop": LOOP, "key": key},
            provenance=dict(provenance or {}),
        )

    # Iterate.
    with progress(
        (params.iterations - first + 1) * len(groups), f"variations [{start}, {stop})"
    ) as bar:
        for it in range(first, params.iterations):
            t0 = time.perf_counter()
            new, per_id = [], []
            for g0, g1 in groups:
                xi = iteration_noise(seed, ids[g0:g1], it, a, w_dim).to(device)
                w_g, st = dispersion_step(embedder, params, w[g0:g1], e_ref[g0:g1], xi)
                new.append(w_g)
                per_id.append(st)
                bar.update(1)
            w = torch.cat(new) if new else w
            rows.append(_row(it, per_id, keep, time.perf_counter() - t0))
            done = it + 1
            if checkpoint is not None and params.checkpoint_every and done < params.iterations:
                if done % params.checkpoint_every == 0:
                    save(done)
            if abort_fn is not None and done < params.iterations and abort_fn():
                if checkpoint is not None:
                    save(done)
                log.info("variations: aborted after iteration %d", done)
                return

        # Final embeddings of the final latents, in the same groups.
        t0 = time.perf_counter()
        e_final, per_id = [], []
        for g0, g1 in groups:
            e_g, st = _final_state(embedder, params, w[g0:g1], e_ref[g0:g1])
            e_final.append(e_g)
            per_id.append(st)
            bar.update(1)
        rows.append(_row(params.iterations, per_id, keep, time.perf_counter() - t0))

    # Write the shard: variation 0 is the reference, 1..A the sampled variations.
    e_dim = e_ref.shape[1]
    e_var = torch.cat(e_final) if e_final else torch.empty(0, a, e_dim, device=device)
    VariationStore(
        identity=store.identity[start:stop],
        w=torch.cat([w_ref[:, None], w], dim=1)[keep].cpu().numpy(),
        embedding=torch.cat([e_ref[:, None], e_var], dim=1)[keep].cpu().numpy(),
        provenance={
            **(provenance or {}),
            "variation_params": params.to_dict(),
            "seed": int(seed),
            "shard": [int(start), int(stop)],
        },
    ).write(out)
    if stats_out is not None:
        with atomic_path(stats_out) as tmp:
            table = pd.DataFrame(rows, columns=list(STAT_COLUMNS))
            table["iteration"] = table["iteration"].astype(np.int64)
            table.to_csv(tmp, index=False)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)


def _read_references(embedder: nn.Module, path: Path | str, start: int, stop: int) -> IdentityStore:
    """identities.h5, checked against the shard's range and the embedder's dimensions."""
    store = IdentityStore.read(path)
    n, w_dim = store.w.shape
    if not 0 <= start <= stop <= n:
        raise UserError(
            f"{path}: identity range [{start}, {stop}) is outside the store, "
            f"which holds rows 0..{n - 1}"
        )
    if w_dim != embedder.w_dim:
        raise UserError(f"{path}: latents have w_dim {w_dim}, the generator {embedder.w_dim}")
    if stop > start:
        with torch.no_grad():
            w = torch.from_numpy(store.w[start : start + 1]).to(embedder.w_avg.device)
            e_dim = embedder(w).shape[1]
        if e_dim != store.embedding.shape[1]:
            raise UserError(
                f"{path}: embeddings have {store.embedding.shape[1]} dimensions, "
                f"the FR model's {e_dim}; were the identities made with another FR model?"
            )
    return store


def check_eval_mode(embedder: nn.Module) -> None:
    """Refuse batch norm or dropout in training mode: they would couple the images of a pass."""
    for name, m in embedder.named_modules():
        if m.training and isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout):
            raise ValueError(f"sample_variations: embedder module {name!r} is in training mode")


def _final_state(
    embedder: nn.Module, params: VariationParams, w: torch.Tensor, e_ref: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Embeddings [G, A, D] of the final latents and the state statistics of each identity."""
    g, a, w_dim = w.shape
    flat = w.reshape(g * a, w_dim)
    with torch.no_grad():
        e = torch.cat(
            [embedder(flat[s : s + params.batch_size]) for s in range(0, g * a, params.batch_size)]
        ).reshape(g, a, -1)
    off = ~torch.eye(a, dtype=torch.bool, device=w.device)
    en = torch.nn.functional.normalize(e, dim=-1)
    intra = torch.arccos((en @ en.transpose(1, 2)).clamp(-1 + COS_CLAMP, 1 - COS_CLAMP))
    d = torch.cdist(w, w, compute_mode="donot_use_mm_for_euclid_dist")
    theta = angle_to(e, e_ref[:, None, :])
    return e, state_stats(theta, intra[:, off], d[:, off], w, embedder.w_avg)


def _row(
    iteration: int, per_id: list[dict[str, torch.Tensor]], keep: slice, seconds: float
) -> dict[str, float]:
    """Aggregate the per-identity statistics of this shard's identities into one table row."""
    row: dict[str, float] = {c: float("nan") for c in STAT_COLUMNS}
    row.update(iteration=float(iteration), wall_time=seconds)
    for name in per_id[0] if per_id else ():
        values = torch.cat([st[name] for st in per_id])[keep].double().cpu().numpy()
        if values.size:
            fn = np.min if name in _MINIMA else np.max if name in _MAXIMA else np.mean
            row[name] = float(fn(values))
    return row


def _fingerprint(
    params: VariationParams,
    seed: int,
    start: int,
    stop: int,
    store: IdentityStore,
    lo: int,
    hi: int,
    directions: torch.Tensor | None,
    provenance: Mapping[str, Any] | None,
) -> str:
    """A digest of everything that determines the result (checkpoint_every does not)."""
    h = hashlib.sha256()
    settings = {k: v for k, v in params.to_dict().items() if k != "checkpoint_every"}
    header = [settings, int(seed), start, stop, lo, hi, dict(provenance or {})]
    h.update(json.dumps(header, sort_keys=True, default=str).encode())
    for arr in (store.identity[lo:hi], store.w[lo:hi], store.embedding[lo:hi]):
        h.update(np.ascontiguousarray(arr).tobytes())
    if directions is not None:
        h.update(directions.numpy().tobytes())
    return h.hexdigest()
