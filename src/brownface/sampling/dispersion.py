"""Dispersion: the intra-class dynamics that spread the variations of one identity.

Each identity i has a reference latent w_ref with the stored reference embedding e_ref and A
variation latents w_a, started at w_ref + sigma xi (DisCo adds a random covariate edit, see
``disco.py``). Every iteration moves them with

    U   = sum_a (k_e / 4) theta(e_a, e_ref)^2 + sum_{a<b, d_ab < r_w} (k_w / 2)(r_w - d_ab)^2
    F_a = -dU/dw_a + k_g (w_avg - w_a),        d_ab = ||w_a - w_b||, e_a = E(crop(G(w_a)))
    w_a <- w_a + (dt / mu)(F_a + eta xi_a)     (no sqrt(dt) on the noise, as in the paper)

The embedding term is a sum of one term per image, so its gradient is exact for any split of
the images into passes of at most ``batch_size``; the repulsion couples the variations of one
identity only and needs no generator, so it is computed analytically for all A at once,
vectorised over identities. ``impl="ref"`` is the plain version (one identity at a time, all A
in one pass, repulsion by autograd) the batched path is tested against.

The loop (:func:`disperse`) runs a range of identities as one shard. Sharding cannot change a
result: every draw is seeded by (seed, stage, identity[, iteration]); every per-identity
quantity (forces, adaptive dt) is computed from that identity alone; and the networks run on
fixed groups of ``params.group_size`` consecutive identities, group g being rows
[g * group_size, (g + 1) * group_size) of identities.h5 whatever the shard. Kernels may round
differently for another batch shape, so a shard whose range does not fall on group boundaries
also computes the rest of its first and last group and drops them; ``shard_range(n, shards, k,
align=params.group_size)`` gives ranges on group boundaries. One shard and any number of merged
shards thus give identical arrays (on the same hardware and thread count).
"""

from __future__ import annotations

import logging
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
from brownface.errors import UserError
from brownface.runlog import progress
from brownface.sampling.embedder import embed_all
from brownface.sampling.force_pass import ForcePass, prepared
from brownface.sampling.geometry import angle, cosines, latent_distances
from brownface.sampling.stats import (
    VARIATION_COLUMNS,
    stats_table,
    variation_row,
    variation_stats,
)
from brownface.seeding import torch_generator
from brownface.store import load_loop_state, run_key, save_checkpoint

log = logging.getLogger(__name__)

LOOP = "variations"
_D = defaults("variation_recipe")


@dataclass(frozen=True)
class VariationParams(SchemaParams):
    """A variations recipe (config ``variations.<name>``); defaults and limits are the
    schema's ``variation_recipe``."""

    SCHEMA: ClassVar[str] = "variation_recipe"
    CONFIG_KEY: ClassVar[str] = "variations"

    algorithm: str  # dispersion | disco (dispersion from random covariate edits)
    variations: int = _D["variations"]  # A per identity (the store adds the reference)
    iterations: int = _D["iterations"]  # dispersion iterations (0 = keep the start latents)
    sigma: float = _D["sigma"]  # std of the start noise around the reference latent
    k_e: float = _D["k_e"]  # stiffness of the pull towards the reference embedding
    k_w: float = _D["k_w"]  # stiffness of the latent repulsion between variations
    r_w: float = _D["r_w"]  # radius of the latent repulsion
    k_g: float = _D["k_g"]  # stiffness of the pull towards w_avg
    eta: float = _D["eta"]  # strength of the random force
    mu: float = _D["mu"]  # friction
    timestep: float = _D["timestep"]  # dt; < 0 = adaptive per identity (see ``timesteps``)
    scale_pose: float = _D["scale_pose"]  # DisCo scaling s of the pose direction
    scale_illumination: float = _D["scale_illumination"]  # ... of the illumination direction
    scale_expression: float = _D["scale_expression"]  # ... of the five expression directions
    batch_size: int = _D["batch_size"]  # max images per forward/backward pass
    checkpoint_every: int = _D["checkpoint_every"]  # iterations between checkpoints (0 = none)
    precision: str = _D["precision"]  # fp32 | bf16: autocast of the networks in the force pass
    activation_checkpointing: bool = _D["activation_checkpointing"]  # recompute synthesis
    channels_last: bool = _D["channels_last"]  # NHWC networks
    compile: bool = _D["compile"]  # torch.compile the generator and FR network

    #: How a shard is computed, not what (left out of its checkpoint's fingerprint).
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ("activation_checkpointing",)

    def check(self) -> None:
        if self.timestep < 0 and self.variations < 2:
            raise UserError(
                "config variations.variations: must be >= 2 with an adaptive (negative) "
                f"timestep, got {self.variations}"
            )

    def force_pass(self) -> ForcePass:
        """Passes of at most batch_size images, in the recipe's precision (one rank: shards
        are the unit of parallelism here)."""
        return ForcePass(
            self.batch_size, precision=self.precision, checkpointing=self.activation_checkpointing
        )

    @property
    def group_size(self) -> int:
        """Identities per group: as many whole identities as fit in one pass (at least one)."""
        return max(1, self.batch_size // self.variations)


class Forces(NamedTuple):
    """Forces on each latent [G, A, w_dim] and what they were computed from."""

    embedding: torch.Tensor  # -grad of the embedding pull
    repulsion: torch.Tensor  # -grad of the latent repulsion
    pull: torch.Tensor  # k_g (w_avg - w)
    embeddings: torch.Tensor  # e_a [G, A, D], raw
    theta: torch.Tensor  # theta(e_a, e_ref) [G, A], radians
    distances: torch.Tensor  # d_ab [G, A, A]


class Variations(NamedTuple):
    """The result of :func:`disperse` for identities [start, stop)."""

    w: torch.Tensor  # [n, A, w_dim] final latents of the sampled variations
    embeddings: torch.Tensor  # [n, A, D] their embeddings
    stats: pd.DataFrame  # one row per iteration, and one for the final state


# ---------------------------------------------------------------------------------------------
# Random draws: one generator per (seed, stage, identity[, iteration]).


def start_noise(
    seed: int, identities: torch.Tensor, variations: int, w_dim: int, n_directions: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start noise xi [G, A, w_dim] ~ N(0, 1) and DisCo weights u [G, A, n] ~ U(-1/2, 1/2).

    Both come from ``torch_generator(seed, "variations/start", identity)``, xi first, so
    Dispersion and DisCo start from the same xi for the same seed.
    """
    xi, u = [], []
    for i in identities.tolist():
        gen = torch_generator(seed, "variations/start", i)
        xi.append(torch.randn(variations, w_dim, generator=gen))
        u.append(torch.rand(variations, n_directions, generator=gen) - 0.5)
    if not xi:
        return torch.empty(0, variations, w_dim), torch.empty(0, variations, n_directions)
    return torch.stack(xi), torch.stack(u)


def iteration_noise(
    seed: int, identities: torch.Tensor, iteration: int, variations: int, w_dim: int
) -> torch.Tensor:
    """xi [G, A, w_dim] ~ N(0, 1) of one iteration, from (seed, "variations/noise", i, it)."""
    rows = [
        torch.randn(
            variations, w_dim, generator=torch_generator(seed, "variations/noise", i, iteration)
        )
        for i in identities.tolist()
    ]
    return torch.stack(rows) if rows else torch.empty(0, variations, w_dim)


def start_latents(
    w_ref: torch.Tensor,  # [G, w_dim] reference latents
    xi: torch.Tensor,  # [G, A, w_dim] start noise
    sigma: float,
    u: torch.Tensor | None = None,  # [G, A, n] DisCo weights; None = Dispersion
    directions: torch.Tensor | None = None,  # [n, w_dim] scaled DisCo directions s_d E_d n_d
) -> torch.Tensor:
    """w_a = w_ref + sigma xi_a (+ sum_d u_ad s_d E_d n_d for DisCo), [G, A, w_dim]."""
    w = w_ref[:, None, :] + sigma * xi
    if directions is not None and u is not None:
        w = w + u @ directions
    return w


# ---------------------------------------------------------------------------------------------
# Forces, batched.


def embedding_forces(
    embedder: nn.Module,  # w [B, w_dim] -> raw embeddings [B, D]
    w: torch.Tensor,  # [M, w_dim], any number of images
    e_ref: torch.Tensor,  # [M, D] the reference embedding of each image's identity
    k_e: float,
    batch_size: int,  # max images per forward/backward pass
    fp: ForcePass | None = None,  # precision and checkpointing of the passes; None = fp32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-grad_w sum (k_e/4) theta(e, e_ref)^2 [M, w_dim], embeddings [M, D]) in passes.

    The potential is a sum of one term per image and the networks are evaluated per image (eval
    mode), so each row of the gradient of a pass is that image's own gradient.
    """
    fp = fp or ForcePass(batch_size)
    forces, embeddings = [], []
    for s in range(0, w.shape[0], batch_size):
        x = w[s : s + batch_size].detach().requires_grad_(True)
        with torch.enable_grad():
            e = fp.embed(embedder, x)
            theta = angle(cosines(e, e_ref[s : s + batch_size], pairwise=False), grad_safe=True)
            (grad,) = torch.autograd.grad((k_e / 4) * theta.square().sum(), x)
        forces.append(-grad)
        embeddings.append(e.detach())
    return torch.cat(forces), torch.cat(embeddings)


def repulsion_forces(w: torch.Tensor, k_w: float, r_w: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(F [G, A, w_dim], d [G, A, A]) of U = sum_{a<b} (k_w/2)(r_w - d_ab)_+^2, analytically:
    F_a = k_w sum_b c_ab (w_a - w_b), c_ab = (r_w - d_ab)_+ / d_ab (0 for b = a or d_ab = 0)."""
    w = w - w.mean(dim=1, keepdim=True)  # translation invariant; smaller numbers to subtract
    d = latent_distances(w, w)
    c = torch.where(d > 0, (r_w - d).clamp(min=0) / d.clamp(min=torch.finfo(d.dtype).eps), 0.0)
    return k_w * (c.sum(-1, keepdim=True) * w - c @ w), d


def dispersion_forces(
    embedder: nn.Module, params: VariationParams, w: torch.Tensor, e_ref: torch.Tensor
) -> Forces:
    """All forces on w [G, A, w_dim] of G identities with references e_ref [G, D]."""
    g, a, w_dim = w.shape
    flat_ref = e_ref[:, None, :].expand(g, a, e_ref.shape[-1]).reshape(g * a, -1)
    f_e, e = embedding_forces(
        embedder, w.reshape(g * a, w_dim), flat_ref, params.k_e, params.batch_size,
        params.force_pass(),
    )  # fmt: skip
    f_e, e = f_e.reshape(g, a, w_dim), e.reshape(g, a, -1)
    f_w, d = repulsion_forces(w, params.k_w, params.r_w)
    pull = params.k_g * (embedder.w_avg - w)
    theta = angle(cosines(e, e_ref[:, None, :], pairwise=False))
    return Forces(f_e, f_w, pull, e, theta, d)


# ---------------------------------------------------------------------------------------------
# Forces, reference: one identity at a time, all A images in one pass, repulsion by autograd.


def dispersion_forces_ref(
    embedder: nn.Module, params: VariationParams, w: torch.Tensor, e_ref: torch.Tensor
) -> Forces:
    """The forces on the A latents w [A, w_dim] of one identity, e_ref [D]; no batching."""
    a = w.shape[0]
    x = w.detach().requires_grad_(True)
    with torch.enable_grad():
        e = embedder(x)
        theta = angle(cosines(e, e_ref[None, :], pairwise=False), grad_safe=True)
        (f_e,) = torch.autograd.grad(-(params.k_e / 4) * theta.square().sum(), x)
        x = w.detach().requires_grad_(True)
        i, j = torch.triu_indices(a, a, offset=1)
        d = (x[i] - x[j]).norm(dim=-1)
        energy = (params.k_w / 2) * (params.r_w - d).clamp(min=0).square().sum()
        (f_w,) = torch.autograd.grad(-energy, x)
    dist = w.new_zeros(a, a)
    dist[i, j] = d.detach()
    dist = dist + dist.T
    pull = params.k_g * (embedder.w_avg - w)
    return Forces(f_e, f_w, pull, e.detach(), theta.detach(), dist)


# ---------------------------------------------------------------------------------------------
# One step.


def timesteps(params: VariationParams, total: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """dt per identity [G]: fixed, or |tau| mu min_{a!=b} d_ab / max_a ||F_a|| (tau < 0).

    The adaptive minimum runs over one identity's variations only, so a shard or batch never
    changes an identity's dt. (The reference takes one dt for the whole job, from the smallest
    distance and largest force over all its identities.)
    """
    g, a, _ = d.shape
    if params.timestep > 0:
        return torch.full((g,), params.timestep, dtype=total.dtype, device=total.device)
    off = ~torch.eye(a, dtype=torch.bool, device=d.device)
    d_min = d[:, off].amin(dim=1)
    f_max = total.norm(dim=-1).amax(dim=1).clamp(min=torch.finfo(total.dtype).tiny)
    return abs(params.timestep) * params.mu * d_min / f_max


def dispersion_step(
    embedder: nn.Module,
    params: VariationParams,
    w: torch.Tensor,  # [G, A, w_dim] current latents of G identities
    e_ref: torch.Tensor,  # [G, D] stored reference embeddings
    xi: torch.Tensor,  # [G, A, w_dim] this iteration's N(0, 1) noise
    impl: str = "batched",  # batched | ref (one identity at a time)
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One update of G identities: (new w [G, A, w_dim], per-identity statistics [G] each)."""
    if impl == "batched":
        forces = dispersion_forces(embedder, params, w, e_ref)
    elif impl == "ref":
        per_id = [dispersion_forces_ref(embedder, params, w[i], e_ref[i]) for i in range(len(w))]
        forces = Forces(*(torch.stack(parts) for parts in zip(*per_id)))
    else:
        raise ValueError(f"dispersion_step: impl must be 'batched' or 'ref', got {impl!r}")
    noise = params.eta * xi
    total = forces.embedding + forces.repulsion + forces.pull + noise
    dt = timesteps(params, total, forces.distances)
    w_new = w + (dt / params.mu)[:, None, None] * total
    stats = variation_stats(forces.theta, forces.embeddings, forces.distances, w, embedder.w_avg)
    stats.update(
        force_embedding=forces.embedding.norm(dim=-1).mean(1),
        force_repulsion=forces.repulsion.norm(dim=-1).mean(1),
        force_global=forces.pull.norm(dim=-1).mean(1),
        force_noise=noise.norm(dim=-1).mean(1),
        dt=dt,
    )
    return w_new, stats


def final_state(
    embedder: nn.Module, params: VariationParams, w: torch.Tensor, e_ref: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Embeddings [G, A, D] of the final latents w [G, A, w_dim] and their statistics."""
    g, a, w_dim = w.shape
    e = embed_all(embedder, w.reshape(g * a, w_dim), params.batch_size).reshape(g, a, -1)
    theta = angle(cosines(e, e_ref[:, None, :], pairwise=False))
    return e, variation_stats(theta, e, latent_distances(w, w), w, embedder.w_avg)


# ---------------------------------------------------------------------------------------------
# The loop over a shard.


def check_eval_mode(embedder: nn.Module) -> None:
    """Refuse batch norm or dropout in training mode: they would couple the images of a pass."""
    for name, m in embedder.named_modules():
        if m.training and isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout):
            raise ValueError(f"dispersion: embedder module {name!r} is in training mode")


def disperse(
    embedder: nn.Module,  # LatentEmbedder: w [B, w_dim] -> raw embeddings, with w_avg, w_dim
    params: VariationParams,
    references: Mapping[str, np.ndarray],  # identity [N], w [N, w_dim], embedding [N, D]
    start: int,  # first row of the references in this shard
    stop: int,  # one past the last row
    seed: int,  # config seed; with the identity, it seeds every draw
    directions: torch.Tensor | None = None,  # [7, w_dim] DisCo's scaled directions
    checkpoint: Path | str | None = None,  # checkpoint file of this shard; None = no resume
    provenance: Mapping[str, Any] | None = None,  # part of the checkpoint's fingerprint
    abort_fn: Callable[[], bool] | None = None,  # checked after each iteration; True = stop
) -> Variations | None:
    """A variations of identities [start, stop) of ``references``; None when aborted.

    With ``checkpoint``, the state is saved every ``params.checkpoint_every`` iterations, at the
    end and on abort; a rerun resumes from it (bit-identical to an uninterrupted run), and a
    checkpoint of other parameters or inputs is ignored with a warning.
    """
    n, w_dim = references["w"].shape
    if not 0 <= start <= stop <= n:
        raise ValueError(f"disperse: identities [{start}, {stop}) outside the {n} references")
    check_eval_mode(embedder)
    embedder = prepared(embedder, params.channels_last, params.compile)
    device = embedder.w_avg.device
    a = params.variations
    if (directions is None) != (params.algorithm == "dispersion"):
        raise ValueError(f"disperse: {params.algorithm} with directions={directions is not None}")

    # The groups to compute: whole groups covering [start, stop).
    gs = params.group_size
    lo, hi = (start // gs * gs, min(-(-stop // gs) * gs, n)) if stop > start else (start, start)
    groups = [(g - lo, min(g + gs, hi) - lo) for g in range(lo, hi, gs)]
    keep = slice(start - lo, stop - lo)
    ids = torch.from_numpy(references["identity"][lo:hi])
    w_ref = torch.from_numpy(references["w"][lo:hi]).to(device)
    e_ref = torch.from_numpy(references["embedding"][lo:hi]).to(device)
    log.info("%s [%d, %d): groups of %d over [%d, %d)", params.algorithm, start, stop, gs, lo, hi)

    # Start, or resume.
    key = run_key(
        params,
        [int(seed), start, stop, lo, hi, dict(provenance or {})],
        [np.ascontiguousarray(references[k][lo:hi]) for k in ("identity", "w", "embedding")]
        + ([] if directions is None else [directions.numpy()]),
    )
    resumed = load_loop_state(checkpoint, LOOP, key, (hi - lo, a, w_dim), len(VARIATION_COLUMNS))
    if resumed is None:
        first, rows = 0, []
        n_dirs = 0 if directions is None else directions.shape[0]
        xi, u = start_noise(seed, ids, a, w_dim, n_dirs)
        dirs = None if directions is None else directions.to(device)
        w = start_latents(w_ref, xi.to(device), params.sigma, u.to(device), dirs)
    else:
        first, w_np, stats_np = resumed
        w = torch.from_numpy(w_np.astype(np.float32)).to(device)
        rows = [dict(zip(VARIATION_COLUMNS, r)) for r in stats_np]
        log.info("variations: resuming from %s at iteration %d", checkpoint, first)

    def save(iteration: int) -> None:
        stats = np.array([[r[c] for c in VARIATION_COLUMNS] for r in rows], dtype=np.float64)
        save_checkpoint(
            checkpoint,
            arrays={
                "w": w.cpu().numpy(),
                "stats": stats.reshape(len(rows), len(VARIATION_COLUMNS)),
            },
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
            rows.append(variation_row(it, per_id, keep, time.perf_counter() - t0))
            done = it + 1
            due = params.checkpoint_every and (
                done % params.checkpoint_every == 0 or done == params.iterations
            )
            aborted = abort_fn is not None and done < params.iterations and abort_fn()
            if checkpoint is not None and (aborted or due):
                save(done)
            if aborted:
                log.info("variations: aborted after iteration %d", done)
                return None

        # Final embeddings of the final latents, in the same groups.
        t0 = time.perf_counter()
        e_final, per_id = [], []
        for g0, g1 in groups:
            e_g, st = final_state(embedder, params, w[g0:g1], e_ref[g0:g1])
            e_final.append(e_g)
            per_id.append(st)
            bar.update(1)
        rows.append(variation_row(params.iterations, per_id, keep, time.perf_counter() - t0))

    e_dim = e_ref.shape[1]
    e_var = torch.cat(e_final) if e_final else torch.empty(0, a, e_dim, device=device)
    return Variations(w[keep], e_var[keep], stats_table(rows, VARIATION_COLUMNS))
