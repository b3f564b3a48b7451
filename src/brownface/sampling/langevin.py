"""Langevin: Brownian identity diffusion, the inter-class dynamics that spread identities apart.

All N identities start from random latents w_i = mapping(z_i, psi) (the ``random`` algorithm
keeps them) and move together, every iteration t:

    U_i = sum_{j != i} (k/2) (d0 - theta_ij)_+^2  [+ sum_m (k/2) (d0_avoid - theta(e_i, a_m))_+^2]
    F_i = -dU_i/dw_i + k_latent (w_avg - w_i)
    dt  = timestep, or |tau| mu min_{i!=j} ||w_i - w_j|| / max_i ||F_i||  when timestep = tau < 0
    w_i <- w_i + (dt / mu) F_i + (sqrt(dt) / mu) eta xi_i,    xi ~ N(0, I)

with e_i = e(w_i) the FR embedding of identity i, theta the angle in radians, the other
identities' embeddings e_j computed once per iteration and frozen, and a_m an optional fixed
"avoid" set (e.g. real faces).

Each U_i depends on its own w_i only, so the forces of a batch are the rows of ONE gradient of
sum_i U_i. By the chain rule that gradient is J_e(w)^T g, where g_i = dU_i/de_i needs no
generator: it is accumulated over blocks of the frozen embeddings (memory O(batch x block),
never N x N), then pushed through G and E in one backward pass. ``interaction_forces_reference``
is the plain version (one identity at a time, its whole row of angles, autograd from U_i to
w_i) the batched path is tested against.

Every draw comes from ``torch_generator(seed, stage, key)``: identity i's start from its index
(so it does not depend on n or sharding) and the noise of iteration t as one [N, w_dim] draw
from t, so a checkpoint needs no RNG state. Differences from the reference implementation (see
the notes): the interactions are batched; a checkpoint holds the post-update latents and the
index of the NEXT iteration (no repeated step); a checkpoint of other parameters or inputs is
ignored with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from brownface.config import SchemaParams, defaults
from brownface.distributed import Ranks
from brownface.errors import UserError
from brownface.runlog import progress
from brownface.sampling.embedder import embed_all
from brownface.sampling.force_pass import ForcePass, check_memory, prepared
from brownface.sampling.geometry import angle, cosines
from brownface.sampling.stats import (
    DRAW_COLUMNS,
    LANGEVIN_COLUMNS,
    identity_set_stats,
    stats_table,
)
from brownface.seeding import normal_rows, torch_generator
from brownface.store import load_loop_state, run_key, save_checkpoint

log = logging.getLogger(__name__)

LOOP = "langevin"
MAP_CHUNK = 64  # identities per mapping call of the random start
_D = defaults("identity_recipe")


@dataclass(frozen=True)
class IdentityParams(SchemaParams):
    """An identities recipe (config ``identities.<name>``): Langevin's parameters, reject's
    threshold and budget; defaults and limits are the schema's ``identity_recipe``."""

    SCHEMA: ClassVar[str] = "identity_recipe"
    CONFIG_KEY: ClassVar[str] = "identities"

    algorithm: str  # random | reject | langevin
    n: int  # number of identities
    iterations: int = _D["iterations"]  # Langevin iterations (0 = keep the random start)
    k: float = _D["k"]  # stiffness of the repulsion between identities
    d0: float = _D["d0"]  # repulsion radius (angle, radians)
    timestep: float = _D["timestep"]  # dt; tau < 0 = adaptive, see ``timestep``
    mu: float = _D["mu"]  # friction
    eta: float = _D["eta"]  # strength of the random force
    k_latent: float = _D["k_latent"]  # stiffness of the pull towards w_avg
    ict: float = _D["ict"]  # inter-class threshold (radians): reject's criterion, statistics
    max_tries: int | None = _D["max_tries"]  # reject candidates before giving up; None = 100 n
    batch_size: int = _D["batch_size"]  # identities per forward/backward pass
    block_size: int = _D["block_size"]  # columns of each block of pairwise angles
    checkpoint_every: int = _D["checkpoint_every"]  # iterations between checkpoints (0 = none)
    avoid: str | None = _D["avoid"]  # identities store whose embeddings repel (reject, langevin)
    avoid_d0: float | None = _D["avoid_d0"]  # repulsion radius of the avoid set; None = d0
    avoid_images: bool = _D["avoid_images"]  # an embeddings store: every image, not each mean
    gpus: int = _D["gpus"]  # ranks (torchrun) that share the run; the result does not change
    precision: str = _D["precision"]  # fp32 | bf16: autocast of the networks in the force pass
    activation_checkpointing: bool = _D["activation_checkpointing"]  # recompute synthesis
    channels_last: bool = _D["channels_last"]  # NHWC FR network and input
    compile: bool = _D["compile"]  # torch.compile the generator and FR network

    #: Fields that decide how the run is computed, not its result (left out of its fingerprint,
    #: so a checkpoint resumes whatever they are): see ``run_key``.
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("gpus", "activation_checkpointing")

    def check(self) -> None:
        if self.algorithm == "langevin" and self.timestep < 0 and self.iterations and self.n < 2:
            raise UserError(
                f"config identities.n: must be >= 2 for langevin with an adaptive (negative) "
                f"timestep, got {self.n}"
            )
        if self.gpus > 1 and self.algorithm != "langevin":
            raise UserError(
                f"config identities.gpus: only langevin runs on several ranks, got {self.gpus} "
                f"for {self.algorithm}"
            )
        if self.avoid is not None and self.algorithm == "random":
            raise UserError(
                "config identities.avoid: only the reject and langevin algorithms use it"
            )

    @property
    def tries(self) -> int:
        return self.max_tries if self.max_tries is not None else 100 * self.n

    @property
    def avoid_radius(self) -> float:
        return self.d0 if self.avoid_d0 is None else self.avoid_d0

    def force_pass(self, ranks: Ranks | None = None) -> ForcePass:
        return ForcePass(
            self.batch_size, self.block_size, self.precision, self.activation_checkpointing,
            Ranks() if ranks is None else ranks,
        )  # fmt: skip


class Identities(NamedTuple):
    """A sampler's result. ``embeddings`` is None when a Langevin run was aborted."""

    w: torch.Tensor  # [n, w_dim]
    embeddings: torch.Tensor | None  # [n, D] raw e(w) of the final latents
    stats: pd.DataFrame  # one row per iteration (Langevin) or one row (random, reject)


def where(embedder: nn.Module) -> dict[str, Any]:
    """The device and dtype the embedder computes in (where every draw is moved)."""
    return {"device": embedder.w_avg.device, "dtype": embedder.w_avg.dtype}


# ---------------------------------------------------------------------------------------------
# The start: random draws.


def random_latents(embedder: nn.Module, n: int, truncation_psi: float, seed: int) -> torch.Tensor:
    """w_i = mapping(z_i, psi), z_i from ("identities/z", i); row i does not depend on n.

    The mapping runs on whole chunks of MAP_CHUNK identities (the last one padded with the
    following identities' draws), so even the floating-point bits of a row are independent of n.
    """
    chunks = -(-n // MAP_CHUNK)
    z = normal_rows(seed, "identities/z", range(chunks * MAP_CHUNK), embedder.z_dim)
    z = z.to(**where(embedder))
    with torch.no_grad():
        w = [
            embedder.mapping(z[s : s + MAP_CHUNK], truncation_psi=truncation_psi)
            for s in range(0, len(z), MAP_CHUNK)
        ]
    return torch.cat(w)[:n] if w else z.new_zeros(0, embedder.w_dim)


def sample_random(
    embedder: nn.Module, params: IdentityParams, seed: int, truncation_psi: float
) -> Identities:
    """The ``random`` algorithm: Langevin's start, kept."""
    t0 = time.perf_counter()
    w = random_latents(embedder, params.n, truncation_psi, seed)
    e = embed_all(embedder, w, params.batch_size)
    row = dict(
        iteration=0, **identity_set_stats(w, e, embedder.w_avg, params.ict, params.block_size)
    )
    row.update(candidates=params.n, wall_time=time.perf_counter() - t0)
    return Identities(w, e, stats_table([row], DRAW_COLUMNS))


# ---------------------------------------------------------------------------------------------
# Forces.


def repulsion(theta: torch.Tensor, k: float, d0: float) -> torch.Tensor:
    """Elementwise (k/2)(d0 - theta)^2 where theta < d0, else 0."""
    return 0.5 * k * (d0 - theta).clamp(min=0).square()


def embedding_gradient(
    e: torch.Tensor,  # [B, D] live embeddings of the identities in the batch
    fixed: torch.Tensor,  # [N, D] frozen embeddings of all identities (or an avoid set)
    k: float,
    d0: float,
    block_size: int,  # columns of fixed per block
    index: torch.Tensor | None = None,  # [B] row of each batch identity in fixed (j == i skipped)
) -> torch.Tensor:
    """g = d(sum_i U_i)/de [B, D], with U_i = sum_j (k/2)(d0 - theta(e_i, fixed_j))_+^2."""
    e = e.detach()
    grad = torch.zeros_like(e)
    for c0 in range(0, fixed.shape[0], block_size):
        cols = fixed[c0 : c0 + block_size].detach().to(e.dtype)
        x = e.clone().requires_grad_(True)
        with torch.enable_grad():
            energy = repulsion(angle(cosines(x, cols), grad_safe=True), k, d0)  # [B, block]
            if index is not None:
                col_ids = torch.arange(c0, c0 + cols.shape[0], device=e.device)
                energy = energy.masked_fill(index[:, None] == col_ids[None, :], 0.0)
            (g,) = torch.autograd.grad(energy.sum(), x)
        grad += g
    return grad


def batch_forces(
    x: torch.Tensor,  # [B, w_dim] latents of a batch, requires grad
    e: torch.Tensor,  # [B, D] their embeddings e(x), with autograd's graph back to x
    start: int,  # the batch's first identity (its row in fixed)
    fixed: torch.Tensor,  # [N, D] frozen embeddings of all identities
    k: float,
    d0: float,
    block_size: int,
    avoid: torch.Tensor | None = None,
    avoid_d0: float | None = None,
) -> torch.Tensor:
    """F_i = -dU_i/dw_i of one batch, [B, w_dim]: g = dU/de in float32 blocks, then one
    backward pass through the networks."""
    index = torch.arange(start, start + x.shape[0], device=x.device)
    with torch.enable_grad():
        g = embedding_gradient(e, fixed, k, d0, block_size, index)
        if avoid is not None and avoid.shape[0]:
            g += embedding_gradient(e, avoid, k, d0 if avoid_d0 is None else avoid_d0, block_size)
        (grad,) = torch.autograd.grad(e, x, grad_outputs=g)
    return -grad


def interaction_forces(
    embedder: nn.Module,  # w [B, w_dim] -> raw embeddings [B, D], differentiable in w
    w: torch.Tensor,  # [N, w_dim] latents of all identities
    fixed: torch.Tensor,  # [N, D] their frozen embeddings e(w), detached
    k: float,  # stiffness of the repulsion
    d0: float,  # repulsion radius (radians)
    batch_size: int,  # identities per forward/backward pass through G and E
    block_size: int,  # columns of each block of angles
    avoid: torch.Tensor | None = None,  # [M, D] fixed repellers; None = none
    avoid_d0: float | None = None,  # their radius; None = d0
    fp: ForcePass | None = None,  # precision, checkpointing and ranks; None = fp32, one rank
) -> torch.Tensor:
    """F_i = -dU_i/dw_i for every identity, [N, w_dim], given the frozen embeddings; one
    forward and one backward pass per batch."""
    fp = fp or ForcePass(batch_size, block_size)
    forces = []
    for s, e_ in fp.batches(w.shape[0]):
        x = w[s:e_].detach().requires_grad_(True)
        with torch.enable_grad():
            e = fp.embed(embedder, x)
        forces.append(batch_forces(x, e, s, fixed, k, d0, block_size, avoid, avoid_d0))
    local = torch.cat(forces) if forces else w.new_zeros(0, w.shape[1])
    return fp.gather(local, w.shape[0])


def embeddings_and_forces(
    embedder: nn.Module,
    w: torch.Tensor,  # [N, w_dim] latents of all identities (the same on every rank)
    params: IdentityParams,
    fp: ForcePass,
    avoid: torch.Tensor | None = None,  # [M, D] fixed repellers
) -> tuple[torch.Tensor, torch.Tensor]:
    """This iteration's frozen embeddings e(w) [N, D] and interaction forces [N, w_dim].

    The embeddings come from the force pass's own forward passes (with autograd recording),
    so the pass that every other identity's repulsion sees is also the one whose backward
    gives the forces. Each rank embeds its slice, the slices are all-gathered, then each rank
    computes its forces against all N; the last batch's graph is still alive from the first
    loop and is differentiated first, every other batch is recomputed (same operations, same
    bits). Forces are all-gathered too, so every rank holds the whole state and takes the
    same step.
    """
    n = w.shape[0]
    batches = fp.batches(n)
    local, kept = [], None
    for s, e_ in batches:
        x = w[s:e_].detach().requires_grad_(True)
        with torch.enable_grad():
            e = fp.embed(embedder, x)
        local.append(e.detach())
        kept = (x, e)  # only the last batch's graph outlives its turn
    if local:
        mine = torch.cat(local)
    else:  # a rank without identities (n < ranks x batch) still sends [0, D]
        with torch.no_grad():
            mine = w.new_zeros(0, fp.embed(embedder, embedder.w_avg[None]).shape[1])
    fixed = fp.gather(mine, n)
    forces: list[torch.Tensor] = [w.new_zeros(0, w.shape[1])] * len(batches)
    for b in reversed(range(len(batches))):
        s, e_ = batches[b]
        if kept is not None:
            (x, e), kept = kept, None
        else:
            x = w[s:e_].detach().requires_grad_(True)
            with torch.enable_grad():
                e = fp.embed(embedder, x)
        forces[b] = batch_forces(
            x, e, s, fixed, params.k, params.d0, params.block_size, avoid, params.avoid_radius
        )
    local_forces = torch.cat(forces) if forces else w.new_zeros(0, w.shape[1])
    return fixed, fp.gather(local_forces, n)


def interaction_forces_reference(
    embedder: nn.Module,
    w: torch.Tensor,  # [N, w_dim]
    fixed: torch.Tensor,  # [N, D] frozen embeddings
    k: float,
    d0: float,
    avoid: torch.Tensor | None = None,  # [M, D]
    avoid_d0: float | None = None,
) -> torch.Tensor:
    """The same forces, plainly: for each i alone, U_i from its full row of angles, autograd."""
    forces = torch.zeros_like(w)
    for i in range(w.shape[0]):
        x = w[i : i + 1].detach().requires_grad_(True)
        with torch.enable_grad():
            e_i = embedder(x)  # [1, D]
            theta = angle(cosines(e_i, fixed.detach().to(e_i.dtype)), grad_safe=True)[0]  # [N]
            others = torch.arange(w.shape[0], device=w.device) != i
            energy = repulsion(theta[others], k, d0).sum()
            if avoid is not None and avoid.shape[0]:
                radius = d0 if avoid_d0 is None else avoid_d0
                theta_avoid = angle(cosines(e_i, avoid.to(e_i.dtype)), grad_safe=True)[0]
                energy = energy + repulsion(theta_avoid, k, radius).sum()
            (grad,) = torch.autograd.grad(energy, x)
        forces[i] = -grad[0]
    return forces


# ---------------------------------------------------------------------------------------------
# One step.


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
    fp: ForcePass | None = None,  # how the force pass runs; None = the params' on one rank
) -> tuple[torch.Tensor, dict[str, float]]:
    """One update: (new w, the table row's statistics computed before the update).

    On several ranks every rank holds all of w, the embeddings and the forces after the
    gathers, and computes the statistics, the timestep (min latent distance, max force) and
    the update on them itself: the same operations on the same bits as one rank.
    """
    fp = fp or params.force_pass()
    fixed, f_int = embeddings_and_forces(embedder, w, params, fp, avoid)
    stats = identity_set_stats(w, fixed, embedder.w_avg, params.ict, params.block_size)
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


# ---------------------------------------------------------------------------------------------
# The loop.


def langevin(
    embedder: nn.Module,  # LatentEmbedder: w [B, w_dim] -> raw embeddings, with w_avg, mapping
    params: IdentityParams,
    seed: int,  # config seed; seeds the start and the noise of every iteration
    truncation_psi: float,  # truncation of the random start
    checkpoint: Path | str | None = None,  # checkpoint file; None = no checkpoints, no resume
    avoid: torch.Tensor | None = None,  # [M, D] fixed embeddings every identity is repelled by
    provenance: Mapping[str, Any] | None = None,  # part of the checkpoint's fingerprint
    abort_fn: Callable[[int], bool] | None = None,  # called with the iterations done; True = stop
) -> Identities:
    """Brownian identity diffusion of params.n identities from their random start.

    With ``checkpoint``, the post-update latents, the next iteration and the table so far are
    saved every ``checkpoint_every`` iterations, at the end, and when ``abort_fn`` stops the run
    (the result then has ``embeddings`` None). A rerun resumes from a checkpoint with the same
    fingerprint (parameters, seed, truncation, avoid set, provenance) and ends bit-identical to
    an uninterrupted run; a checkpoint with another fingerprint is ignored with a warning.

    Inside a torch.distributed process group (``torchrun``, see ``params.gpus``) the ranks
    share the force pass (``embeddings_and_forces``) and end with the same bits as one rank;
    only rank 0 writes the checkpoint, which any number of ranks can resume.
    """
    ranks = Ranks.current()
    fp = params.force_pass(ranks)
    device, dtype = embedder.w_avg.device, embedder.w_avg.dtype
    net = prepared(embedder, params.channels_last, params.compile)
    if params.iterations:
        check_memory(net, fp, device)
    avoid = None if avoid is None else avoid.to(device)
    key = run_key(
        params,
        [int(seed), float(truncation_psi), str(dtype), dict(provenance or {})],
        [] if avoid is None else [avoid.detach().cpu().double().numpy()],
    )

    # Start, or resume.
    resumed = load_loop_state(
        checkpoint, LOOP, key, (params.n, embedder.w_dim), len(LANGEVIN_COLUMNS)
    )
    if resumed is None:
        first, rows = 0, []
        w = random_latents(embedder, params.n, truncation_psi, seed)
    else:
        first, w_np, stats_np = resumed
        w = torch.from_numpy(w_np).to(device=device, dtype=dtype)
        rows = [dict(zip(LANGEVIN_COLUMNS, map(float, r))) for r in stats_np]
        log.info("langevin: resuming from %s at iteration %d", checkpoint, first)

    def save(done: int) -> None:
        if ranks.rank != 0:
            return
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
            xi = langevin_noise(seed, it, params.n, embedder.w_dim).to(device=device, dtype=dtype)
            w, stats = langevin_step(net, params, w, xi, avoid, fp)
            rows.append(dict(iteration=float(it), **stats, wall_time=time.perf_counter() - t0))
            bar.update(1)
            done = it + 1
            aborted = abort_fn is not None and done < params.iterations and abort_fn(done)
            due = params.checkpoint_every and (
                done % params.checkpoint_every == 0 or done == params.iterations
            )
            if checkpoint is not None and (aborted or due):
                save(done)
            if aborted:
                log.info("langevin: aborted after iteration %d", done)
                return Identities(w, None, stats_table(rows, LANGEVIN_COLUMNS))

    e = embed_all(net, w, params.batch_size, ranks)
    final = identity_set_stats(w, e, embedder.w_avg, params.ict, params.block_size)
    log.info("langevin: final state %s", {k: round(v, 4) for k, v in final.items()})
    return Identities(w, e, stats_table(rows, LANGEVIN_COLUMNS))
