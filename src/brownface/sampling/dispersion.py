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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from brownface.config import check_number_fields, from_section
from brownface.errors import UserError
from brownface.seeding import torch_generator

ALGORITHMS = ("dispersion", "disco")
COS_CLAMP = 1e-6  # as embedder.angles: keeps arccos's gradient finite


@dataclass(frozen=True)
class VariationParams:
    """A variations recipe (config ``variations.<name>``); defaults are the paper's."""

    algorithm: str = "dispersion"  # dispersion | disco (dispersion from random covariate edits)
    variations: int = 64  # A, sampled variations per identity (the store adds the reference)
    iterations: int = 20  # dispersion iterations (0 = keep the start latents)
    sigma: float = 0.2  # std of the start noise around the reference latent
    k_e: float = 20.0  # stiffness of the pull towards the reference embedding
    k_w: float = 1.0  # stiffness of the latent repulsion between variations
    r_w: float = 12.0  # radius of the latent repulsion
    k_g: float = 1.0  # stiffness of the pull towards w_avg
    eta: float = 0.05  # strength of the random force
    mu: float = 1.0  # friction
    timestep: float = 0.05  # dt; < 0 = adaptive per identity (see ``timesteps``)
    scale_pose: float = 1.0  # DisCo scaling s of the pose direction
    scale_illumination: float = 1.0  # DisCo scaling s of the illumination direction
    scale_expression: float = 1.0  # DisCo scaling s of the five expression directions
    batch_size: int = 256  # max images per forward/backward pass
    checkpoint_every: int = 5  # iterations between checkpoints of a shard (0 = none)

    def __post_init__(self) -> None:
        def bad(key: str, want: str) -> UserError:
            return UserError(f"config variations.{key}: must be {want}, got {getattr(self, key)!r}")

        if self.algorithm not in ALGORITHMS:
            raise bad("algorithm", " or ".join(ALGORITHMS))
        check_number_fields(self, bad)
        for key in ("variations", "batch_size"):
            if getattr(self, key) < 1:
                raise bad(key, ">= 1")
        for key in ("iterations", "checkpoint_every", "sigma", "k_e", "k_w", "r_w", "k_g", "eta"):
            if getattr(self, key) < 0:
                raise bad(key, ">= 0")
        for key in ("scale_pose", "scale_illumination", "scale_expression"):
            if getattr(self, key) < 0:
                raise bad(key, ">= 0")
        if self.mu <= 0:
            raise bad("mu", "> 0")
        if self.timestep == 0:
            raise bad("timestep", "non-zero (negative = adaptive)")
        if self.timestep < 0 and self.variations < 2:
            raise bad("variations", ">= 2 with an adaptive (negative) timestep")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> VariationParams:
        """Params from a config section; unknown keys are an error, missing keys the defaults."""
        return from_section(cls, config, "variations")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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


def angle_to(e: torch.Tensor, e_ref: torch.Tensor) -> torch.Tensor:
    """Row-wise angle (radians) between e [..., D] and e_ref [..., D] (broadcast)."""
    cos = (F.normalize(e, dim=-1) * F.normalize(e_ref, dim=-1)).sum(-1)
    return torch.arccos(cos.clamp(-1 + COS_CLAMP, 1 - COS_CLAMP))


def embedding_forces(
    embedder: nn.Module,  # w [B, w_dim] -> raw embeddings [B, D]
    w: torch.Tensor,  # [M, w_dim], any number of images
    e_ref: torch.Tensor,  # [M, D] the reference embedding of each image's identity
    k_e: float,
    batch_size: int,  # max images per forward/backward pass
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-grad_w sum (k_e/4) theta(e, e_ref)^2 [M, w_dim], embeddings [M, D]) in passes.

    The potential is a sum of one term per image and the networks are evaluated per image (eval
    mode), so each row of the gradient of a pass is that image's own gradient.
    """
    forces, embeddings = [], []
    for s in range(0, w.shape[0], batch_size):
        x = w[s : s + batch_size].detach().requires_grad_(True)
        with torch.enable_grad():
            e = embedder(x)
            energy = (k_e / 4) * angle_to(e, e_ref[s : s + batch_size]).square().sum()
            (grad,) = torch.autograd.grad(energy, x)
        forces.append(-grad)
        embeddings.append(e.detach())
    return torch.cat(forces), torch.cat(embeddings)


def pairwise_distances(w: torch.Tensor) -> torch.Tensor:
    """d_ab = ||w_a - w_b|| [G, A, A], from differences (no Gram-matrix cancellation)."""
    return torch.cdist(w, w, compute_mode="donot_use_mm_for_euclid_dist")


def repulsion_forces(w: torch.Tensor, k_w: float, r_w: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(F [G, A, w_dim], d [G, A, A]) of U = sum_{a<b} (k_w/2)(r_w - d_ab)_+^2, analytically:
    F_a = k_w sum_b c_ab (w_a - w_b), c_ab = (r_w - d_ab)_+ / d_ab (0 for b = a or d_ab = 0)."""
    w = w - w.mean(dim=1, keepdim=True)  # translation invariant; smaller numbers to subtract
    d = pairwise_distances(w)
    c = torch.where(d > 0, (r_w - d).clamp(min=0) / d.clamp(min=torch.finfo(d.dtype).eps), 0.0)
    return k_w * (c.sum(-1, keepdim=True) * w - c @ w), d


def dispersion_forces(
    embedder: nn.Module, params: VariationParams, w: torch.Tensor, e_ref: torch.Tensor
) -> Forces:
    """All forces on w [G, A, w_dim] of G identities with references e_ref [G, D]."""
    g, a, w_dim = w.shape
    flat_ref = e_ref[:, None, :].expand(g, a, e_ref.shape[-1]).reshape(g * a, -1)
    f_e, e = embedding_forces(
        embedder, w.reshape(g * a, w_dim), flat_ref, params.k_e, params.batch_size
    )
    f_e, e = f_e.reshape(g, a, w_dim), e.reshape(g, a, -1)
    f_w, d = repulsion_forces(w, params.k_w, params.r_w)
    pull = params.k_g * (embedder.w_avg - w)
    return Forces(f_e, f_w, pull, e, angle_to(e, e_ref[:, None, :]), d)


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
        theta = angle_to(e, e_ref[None, :])
        (f_e,) = torch.autograd.grad(-(params.k_e / 4) * theta.square().sum(), x)
        x = w.detach().requires_grad_(True)
        i, j = torch.triu_indices(a, a, offset=1)
        d = (x[i] - x[j]).norm(dim=-1)
        energy = (params.k_w / 2) * (params.r_w - d).clamp(min=0).square().sum()
        (f_w,) = torch.autograd.grad(-energy, x)
    dist = torch.zeros(a, a)
    dist[i, j] = d.detach().to(dist)
    dist = dist + dist.T
    pull = params.k_g * (embedder.w_avg - w)
    return Forces(f_e, f_w, pull, e.detach(), theta.detach(), dist.to(w))


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
    return w_new, identity_stats(forces, noise, dt, w, embedder.w_avg)


def identity_stats(
    forces: Forces, noise: torch.Tensor, dt: torch.Tensor, w: torch.Tensor, w_avg: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-identity numbers [G] the iteration table aggregates (before the update)."""
    a = w.shape[1]
    off = ~torch.eye(a, dtype=torch.bool, device=w.device)
    e = F.normalize(forces.embeddings, dim=-1)
    intra = torch.arccos((e @ e.transpose(1, 2)).clamp(-1 + COS_CLAMP, 1 - COS_CLAMP))
    stats = state_stats(forces.theta, intra[:, off], forces.distances[:, off], w, w_avg)
    stats.update(
        force_embedding=forces.embedding.norm(dim=-1).mean(1),
        force_repulsion=forces.repulsion.norm(dim=-1).mean(1),
        force_global=forces.pull.norm(dim=-1).mean(1),
        force_noise=noise.norm(dim=-1).mean(1),
        dt=dt,
    )
    return stats


def state_stats(
    theta: torch.Tensor,  # [G, A] angles to the reference
    intra: torch.Tensor,  # [G, pairs] angles between variations
    d: torch.Tensor,  # [G, pairs] latent distances between variations
    w: torch.Tensor,  # [G, A, w_dim]
    w_avg: torch.Tensor,
) -> dict[str, torch.Tensor]:
    return dict(
        angle_mean=theta.mean(1),
        angle_min=theta.amin(1),
        angle_max=theta.amax(1),
        intra_angle_mean=intra.mean(1),
        latent_spread=d.mean(1),
        dist_w_avg=(w - w_avg).norm(dim=-1).mean(1),
    )
