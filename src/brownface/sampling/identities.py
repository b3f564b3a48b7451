"""Identity samplers: random draws, rejection sampling, and Langevin (Brownian identity diffusion).

All three start from latents w = mapping(z, psi). ``random`` keeps them. ``reject`` accepts a draw
only if its embedding is at least ``ict`` from every accepted one. ``langevin`` moves all N
identities together, every iteration t:

    F_i = -dU_i/dw_i + k_latent (w_avg - w_i)         (U_i: see ``potentials.py``)
    dt  = timestep, or |tau| mu min_{i!=j} ||w_i - w_j|| / max_i ||F_i||  when timestep = tau < 0
    w_i <- w_i + (dt / mu) F_i + (sqrt(dt) / mu) eta xi_i,    xi ~ N(0, I)

Every draw comes from ``torch_generator(seed, stage, key)``: identity i's start from its index
(so it does not depend on n or sharding), reject candidate c from c, and the Langevin noise of
iteration t as one [N, w_dim] draw from t. A Langevin checkpoint therefore needs no RNG state.

Differences from the reference implementation (see the notes): the interactions are batched
(one backward pass per batch, tested against the one-at-a-time loop); a checkpoint holds the
post-update latents and the index of the NEXT iteration (no repeated step); checkpoints of other
parameters or inputs are ignored with a warning; angles are never held as an N x N matrix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from brownface.config import check_number_fields, from_section
from brownface.errors import UserError
from brownface.runlog import progress
from brownface.sampling.embedder import angles
from brownface.sampling.potentials import (
    STATE_COLUMNS,
    embed_all,
    interaction_forces,
    state_stats,
)
from brownface.seeding import normal_rows, torch_generator
from brownface.store import (
    IdentityStore,
    atomic_path,
    load_loop_state,
    save_checkpoint,
)

log = logging.getLogger(__name__)

ALGORITHMS = ("random", "reject", "langevin")
LOOP = "langevin"
MAP_CHUNK = 64  # identities per mapping call of the random start
FORCE_COLUMNS = tuple(
    f"force_{kind}_{agg}" for kind in ("interaction", "latent", "total") for agg in ("mean", "max")
)
LANGEVIN_COLUMNS = ("iteration", *STATE_COLUMNS, *FORCE_COLUMNS, "dt", "wall_time")
DRAW_COLUMNS = ("iteration", *STATE_COLUMNS, "candidates", "wall_time")  # random and reject


@dataclass(frozen=True)
class IdentityParams:
    """An identities recipe (config ``identities.<name>``); defaults are the paper's."""

    algorithm: str = "langevin"  # random | reject | langevin
    n: int = 10_000  # number of identities
    truncation_psi: float = 0.7  # truncation of the starting draws
    iterations: int = 100  # Langevin iterations (0 = keep the random start)
    k: float = 1.0  # stiffness of the repulsion between identities
    d0: float = 1.4  # repulsion radius (angle, radians)
    timestep: float = -0.3  # dt; tau < 0 = adaptive, |tau| mu min latent distance / max force
    mu: float = 1.0  # friction
    eta: float = 0.01  # strength of the random force
    k_latent: float = 0.1  # stiffness of the pull towards w_avg
    ict: float = 1.4  # inter-class threshold (radians): reject's criterion, and statistics
    max_tries: int | None = None  # reject candidates before giving up; None = 100 n
    batch_size: int = 64  # identities per forward/backward pass
    block_size: int = 2048  # columns of each block of pairwise angles (memory O(batch x block))
    checkpoint_every: int = 10  # Langevin iterations between checkpoints (0 = none)
    avoid_d0: float | None = None  # repulsion radius of the avoid set; None = d0

    def __post_init__(self) -> None:
        def bad(key: str, want: str) -> UserError:
            return UserError(f"config identities.{key}: must be {want}, got {getattr(self, key)!r}")

        if self.algorithm not in ALGORITHMS:
            raise bad("algorithm", " or ".join(ALGORITHMS))
        check_number_fields(self, bad)
        for key in ("n", "batch_size", "block_size"):
            if getattr(self, key) < 1:
                raise bad(key, ">= 1")
        for key in ("iterations", "checkpoint_every", "k", "eta", "k_latent"):
            if getattr(self, key) < 0:
                raise bad(key, ">= 0")
        for key in ("d0", "ict", "mu"):
            if getattr(self, key) <= 0:
                raise bad(key, "> 0")
        if not 0 <= self.truncation_psi <= 1:
            raise bad("truncation_psi", "in [0, 1]")
        if self.timestep == 0:
            raise bad("timestep", "non-zero (negative = adaptive)")
        if self.max_tries is not None and self.max_tries < 1:
            raise bad("max_tries", ">= 1 or null")
        if self.avoid_d0 is not None and self.avoid_d0 <= 0:
            raise bad("avoid_d0", "> 0 or null")
        if self.algorithm == "langevin" and self.timestep < 0 and self.iterations and self.n < 2:
            raise bad("n", ">= 2 for langevin with an adaptive (negative) timestep")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> IdentityParams:
        """Params from a config section; unknown keys are an error, missing keys the defaults."""
        return from_section(cls, config, "identities")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def tries(self) -> int:
        return self.max_tries if self.max_tries is not None else 100 * self.n

    @property
    def avoid_radius(self) -> float:
        return self.d0 if self.avoid_d0 is None else self.avoid_d0


class Identities(NamedTuple):
    """A sampler's result. ``embeddings`` is None when a Langevin run was aborted."""

    w: torch.Tensor  # [n, w_dim]
    embeddings: torch.Tensor | None  # [n, D] raw e(w) of the final latents
    stats: pd.DataFrame  # one row per iteration (Langevin) or one row (random, reject)


def _where(embedder: nn.Module) -> dict[str, Any]:
    return {"device": embedder.w_avg.device, "dtype": embedder.w_avg.dtype}


def _table(rows: list[dict[str, float]], columns: tuple[str, ...]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(columns))
    return table.astype({"iteration": np.int64})


# ---------------------------------------------------------------------------------------------
# random and reject.


def random_latents(embedder: nn.Module, params: IdentityParams, seed: int) -> torch.Tensor:
    """w_i = mapping(z_i, psi), z_i from ("identities/z", i); row i does not depend on n.

    The mapping runs on whole chunks of MAP_CHUNK identities (the last one padded with the
    following identities' draws), so even the floating-point bits of a row are independent of n.
    """
    chunks = -(-params.n // MAP_CHUNK)
    z = normal_rows(seed, "identities/z", range(chunks * MAP_CHUNK), embedder.z_dim)
    z = z.to(**_where(embedder))
    with torch.no_grad():
        w = [
            embedder.mapping(z[s : s + MAP_CHUNK], truncation_psi=params.truncation_psi)
            for s in range(0, len(z), MAP_CHUNK)
        ]
    return torch.cat(w)[: params.n] if w else z.new_zeros(0, embedder.w_dim)


def sample_random(embedder: nn.Module, params: IdentityParams, seed: int) -> Identities:
    t0 = time.perf_counter()
    w = random_latents(embedder, params, seed)
    e = embed_all(embedder, w, params.batch_size)
    row = dict(iteration=0, **state_stats(w, e, embedder.w_avg, params.ict, params.block_size))
    row.update(candidates=params.n, wall_time=time.perf_counter() - t0)
    return Identities(w, e, _table([row], DRAW_COLUMNS))


def sample_reject(
    embedder: nn.Module,
    params: IdentityParams,
    seed: int,
    avoid: torch.Tensor | None = None,  # [M, D]: also reject candidates within avoid_d0 of these
) -> Identities:
    """Accept candidate c (z from ("identities/reject", c)) when theta >= ict to every accepted.

    Candidates are embedded ``batch_size`` at a time but accepted strictly in candidate order,
    each against every identity accepted before it, as in the one-at-a-time definition.
    """
    t0 = time.perf_counter()
    n, tries, where = params.n, params.tries, _where(embedder)
    w_acc: torch.Tensor | None = None  # [n, w_dim] and [n, D] once the first batch is embedded
    e_acc: torch.Tensor | None = None
    count = tried = 0
    with progress(n, "identities (reject)") as bar:
        while count < n and tried < tries:
            ids = range(tried, min(tried + params.batch_size, tries))
            z = normal_rows(seed, "identities/reject", ids, embedder.z_dim).to(**where)
            with torch.no_grad():
                w = embedder.mapping(z, truncation_psi=params.truncation_psi)
            e = embed_all(embedder, w, params.batch_size)
            if w_acc is None or e_acc is None:
                w_acc, e_acc = w.new_empty(n, w.shape[1]), e.new_empty(n, e.shape[1])
            for c in range(len(ids)):
                tried += 1
                ok = count == 0 or bool(angles(e[c : c + 1], e_acc[:count]).min() >= params.ict)
                if ok and avoid is not None and avoid.shape[0]:
                    theta = angles(e[c : c + 1], avoid.to(e.dtype))
                    ok = bool(theta.min() >= params.avoid_radius)
                if ok:
                    w_acc[count], e_acc[count] = w[c], e[c]
                    count += 1
                    bar.update(1)
                    if count == n:
                        break
    if count < n or w_acc is None or e_acc is None:
        raise UserError(
            f"identities reject: accepted only {count} of {n} identities after {tried} "
            "candidates; lower ict or n, or raise max_tries"
        )
    w, e = w_acc, e_acc
    row = dict(iteration=0, **state_stats(w, e, embedder.w_avg, params.ict, params.block_size))
    row.update(candidates=tried, wall_time=time.perf_counter() - t0)
    return Identities(w, e, _table([row], DRAW_COLUMNS))


# ---------------------------------------------------------------------------------------------
# langevin.


def langevin_noise(seed: int, iteration: int, n: int, w_dim: int) -> torch.Tensor:
    """xi [n, w_dim] of one iteration: one draw from ("identities/langevin", iteration)."""
    return torch.randn(n, w_dim, generator=torch_generator(seed, "identities/langevin", iteration))


def timestep(params: IdentityParams, total: torch.Tensor, d_min: float) -> float:
    """dt: fixed, or |tau| mu min_{i!=j} ||w_i - w_j|| / max_i ||F_i|| (tau < 0).

    With no force at all (max ||F|| = 0) the adaptive step falls back to |tau| mu.
    """
    if params.timestep > 0:
        return params.timestep
    f_max = total.norm(dim=-1).max().item() if total.shape[0] else 0.0
    if f_max == 0 or not math.isfinite(d_min):
        return abs(params.timestep) * params.mu
    return abs(params.timestep) * params.mu * d_min / f_max


def langevin_step(
    embedder: nn.Module,
    params: IdentityParams,
    w: torch.Tensor,  # [N, w_dim] latents before this iteration
    xi: torch.Tensor,  # [N, w_dim] this iteration's N(0, 1) noise
    avoid: torch.Tensor | None = None,  # [M, D] fixed repellers
) -> tuple[torch.Tensor, dict[str, float]]:
    """One update: (new w, the table row's statistics computed before the update)."""
    fixed = embed_all(embedder, w, params.batch_size)
    stats = state_stats(w, fixed, embedder.w_avg, params.ict, params.block_size)
    f_int = interaction_forces(
        embedder, w, fixed, params.k, params.d0, params.batch_size, params.block_size,
        avoid, params.avoid_radius,
    )  # fmt: skip
    f_lat = params.k_latent * (embedder.w_avg - w)
    total = f_int + f_lat
    dt = timestep(params, total, stats["latent_dist_min"])
    w_new = w + (dt / params.mu) * total + (math.sqrt(dt) / params.mu) * params.eta * xi
    for kind, f in (("interaction", f_int), ("latent", f_lat), ("total", total)):
        norms = f.norm(dim=-1)
        stats[f"force_{kind}_mean"] = norms.mean().item()
        stats[f"force_{kind}_max"] = norms.max().item()
    stats["dt"] = dt
    return w_new, stats


def langevin(
    embedder: nn.Module,  # LatentEmbedder: w [B, w_dim] -> raw embeddings, with w_avg, mapping
    params: IdentityParams,
    seed: int,  # config seed; seeds the start and the noise of every iteration
    checkpoint: Path | str | None = None,  # checkpoint file; None = no checkpoints, no resume
    avoid: torch.Tensor | None = None,  # [M, D] fixed embeddings every identity is repelled by
    provenance: Mapping[str, Any] | None = None,  # part of the checkpoint's fingerprint
    abort_fn: Callable[[int], bool] | None = None,  # called with the iterations done; True = stop
) -> Identities:
    """Brownian identity diffusion of params.n identities from their random start.

    With ``checkpoint``, the post-update latents, the next iteration and the table so far are
    saved every ``checkpoint_every`` iterations and when ``abort_fn`` stops the run (the result
    then has ``embeddings`` None). A rerun resumes from a checkpoint with the same fingerprint
    (parameters, seed, avoid set, provenance) and ends bit-identical to an uninterrupted run; a
    checkpoint with another fingerprint is ignored with a warning and the run starts over.
    """
    where = _where(embedder)
    avoid = None if avoid is None else avoid.to(where["device"])
    key = _fingerprint(params, seed, avoid, provenance, where["dtype"])

    # Start, or resume.
    resumed = load_loop_state(
        checkpoint, LOOP, key, (params.n, embedder.w_dim), len(LANGEVIN_COLUMNS)
    )
    if resumed is None:
        first, rows = 0, []
        w = random_latents(embedder, params, seed)
    else:
        first, w_np, stats_np = resumed
        w = torch.from_numpy(w_np).to(**where)
        rows = [dict(zip(LANGEVIN_COLUMNS, map(float, r))) for r in stats_np]
        log.info("langevin: resuming from %s at iteration %d", checkpoint, first)

    def save(done: int) -> None:
        table = np.array([[r[c] for c in LANGEVIN_COLUMNS] for r in rows], dtype=np.float64)
        save_checkpoint(
            checkpoint,
            arrays={"w": w.cpu().numpy(), "stats": table.reshape(len(rows), len(LANGEVIN_COLUMNS))},
            iteration=done,
            rng={},  # nothing to restore: the noise of iteration t is seeded by t
            meta={"loop": LOOP, "key": key, "n": params.n, "params": json.dumps(params.to_dict())},
            provenance=dict(provenance or {}),
        )

    # Iterate.
    with progress(params.iterations - first, "identities (langevin)") as bar:
        for it in range(first, params.iterations):
            t0 = time.perf_counter()
            xi = langevin_noise(seed, it, params.n, embedder.w_dim).to(**where)
            w, stats = langevin_step(embedder, params, w, xi, avoid)
            rows.append(dict(iteration=float(it), **stats, wall_time=time.perf_counter() - t0))
            bar.update(1)
            done = it + 1
            aborted = abort_fn is not None and done < params.iterations and abort_fn(done)
            if checkpoint is not None and (
                aborted or (params.checkpoint_every and done % params.checkpoint_every == 0)
            ):
                save(done)
            if aborted:
                log.info("langevin: aborted after iteration %d", done)
                return Identities(w, None, _table(rows, LANGEVIN_COLUMNS))

    e = embed_all(embedder, w, params.batch_size)
    final = state_stats(w, e, embedder.w_avg, params.ict, params.block_size)
    log.info("langevin: final state %s", {k: round(v, 4) for k, v in final.items()})
    return Identities(w, e, _table(rows, LANGEVIN_COLUMNS))


def _fingerprint(
    params: IdentityParams,
    seed: int,
    avoid: torch.Tensor | None,
    provenance: Mapping[str, Any] | None,
    dtype: torch.dtype,
) -> str:
    """A digest of everything that determines the result (checkpoint_every does not)."""
    h = hashlib.sha256()
    settings = {k: v for k, v in params.to_dict().items() if k != "checkpoint_every"}
    header = [settings, int(seed), str(dtype), dict(provenance or {})]
    h.update(json.dumps(header, sort_keys=True, default=str).encode())
    if avoid is not None:
        h.update(avoid.detach().cpu().double().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The stage.


def sample_identities(
    embedder: nn.Module,  # LatentEmbedder (in eval mode) on the device to compute on
    params: IdentityParams,
    seed: int,  # config seed
    out: Path | str,  # identities.h5 to write
    stats_out: Path | str | None = None,  # statistics CSV; None = none
    checkpoint: Path | str | None = None,  # Langevin checkpoint; None = no resume
    avoid: torch.Tensor | None = None,  # [M, D] embeddings to keep away from (reject, langevin)
    provenance: Mapping[str, Any] | None = None,  # recorded in the store
    device: torch.device | str | None = None,  # None = where the embedder is; else moved there
) -> None:
    """Sample params.n identities and write identities.h5 (and the statistics table).

    The Langevin checkpoint is deleted once identities.h5 is written.
    """
    if device is not None:
        embedder = embedder.to(device)
    if avoid is not None and params.algorithm == "random":
        raise UserError("config identities.avoid: only the reject and langevin algorithms use it")
    if avoid is not None:
        avoid = avoid.to(embedder.w_avg.device)
        e_dim = embed_all(embedder, embedder.w_avg[None], 1).shape[1]
        if avoid.ndim != 2 or avoid.shape[1] != e_dim:
            raise UserError(
                f"identities avoid set: embeddings must be [M, {e_dim}], got {list(avoid.shape)}"
            )
    log.info("identities (%s): n = %d, seed %d", params.algorithm, params.n, seed)
    if params.algorithm == "random":
        result = sample_random(embedder, params, seed)
    elif params.algorithm == "reject":
        result = sample_reject(embedder, params, seed, avoid)
    else:
        result = langevin(embedder, params, seed, checkpoint, avoid, provenance)
    assert result.embeddings is not None  # only an abort_fn stops a run early
    IdentityStore(
        identity=np.arange(params.n, dtype=np.int64),
        w=result.w.detach().cpu().float().numpy(),
        embedding=result.embeddings.detach().cpu().float().numpy(),
        provenance={**(provenance or {}), "identity_params": params.to_dict(), "seed": int(seed)},
    ).write(out)
    if stats_out is not None:
        with atomic_path(stats_out) as tmp:
            result.stats.to_csv(tmp, index=False)
    if checkpoint is not None and params.algorithm == "langevin":
        Path(checkpoint).unlink(missing_ok=True)
