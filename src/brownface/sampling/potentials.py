"""The repulsion between identities in embedding space, and the forces it puts on latents.

Identity i at latent w_i has the embedding e_i = e(w_i). With the other identities frozen (their
embeddings e_j computed once per iteration and detached), its potential is

    U_i = sum_{j != i} (k/2) (d0 - theta_ij)_+^2  [+ sum_m (k/2) (d0_avoid - theta(e_i, a_m))_+^2]

with theta the angle in radians and a_m an optional fixed "avoid" set (e.g. real faces). The
interaction force is F_i = -dU_i/dw_i, through the generator and the FR network.

Each U_i depends on its own w_i only, so the forces of a batch are the rows of ONE gradient of
sum_i U_i. By the chain rule that gradient is J_e(w)^T g, where g_i = dU_i/de_i needs no
generator: it is accumulated over blocks of the fixed embeddings (memory O(batch x block), never
N x N), then pushed through G and E in one backward pass. ``interaction_forces_reference`` is
the plain version (one identity at a time, its whole row of angles in one tensor, autograd from
U_i to w_i) that the batched path is tested against. ``state_stats`` summarises a set of
identities (nearest-neighbour angles, latent spread) with the same blockwise helpers.
"""

from __future__ import annotations

import torch
from torch import nn

from brownface.sampling.embedder import angles

STATE_COLUMNS = (
    "nn_angle_min",  # angle (rad) to the nearest other identity: min over identities
    "nn_angle_mean",  # ... mean over identities
    "nn_angle_max",  # ... max over identities
    "frac_below_ict",  # fraction of identities whose nearest other identity is closer than ict
    "latent_dist_min",  # min_{i != j} ||w_i - w_j||
    "dist_w_avg_mean",  # mean ||w_i - w_avg||
)


def repulsion(theta: torch.Tensor, k: float, d0: float) -> torch.Tensor:
    """Elementwise (k/2)(d0 - theta)^2 where theta < d0, else 0."""
    return 0.5 * k * (d0 - theta).clamp(min=0).square()


# ---------------------------------------------------------------------------------------------
# Blockwise helpers: at most rows x block_size entries exist at any time.


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
            energy = repulsion(angles(x, cols), k, d0)  # [B, block]
            if index is not None:
                col_ids = torch.arange(c0, c0 + cols.shape[0], device=e.device)
                energy = energy.masked_fill(index[:, None] == col_ids[None, :], 0.0)
            (g,) = torch.autograd.grad(energy.sum(), x)
        grad += g
    return grad


def nearest_angles(e: torch.Tensor, block_size: int) -> torch.Tensor:
    """Angle from each row of e [N, D] to its nearest other row, [N] (inf when N == 1)."""
    n = e.shape[0]
    out = torch.full((n,), float("inf"), dtype=e.dtype, device=e.device)
    for r0 in range(0, n, block_size):
        rows = e[r0 : r0 + block_size]
        row_ids = torch.arange(r0, r0 + rows.shape[0], device=e.device)
        for c0 in range(0, n, block_size):
            theta = angles(rows, e[c0 : c0 + block_size])
            col_ids = torch.arange(c0, c0 + theta.shape[1], device=e.device)
            theta = theta.masked_fill(row_ids[:, None] == col_ids[None, :], float("inf"))
            out[r0 : r0 + rows.shape[0]] = torch.minimum(
                out[r0 : r0 + rows.shape[0]], theta.amin(1)
            )
    return out


def min_latent_distance(w: torch.Tensor, block_size: int) -> torch.Tensor:
    """min_{i != j} ||w_i - w_j|| over w [N, w_dim] (a 0-d tensor; inf when N == 1)."""
    n = w.shape[0]
    best = torch.tensor(float("inf"), dtype=w.dtype, device=w.device)
    for r0 in range(0, n, block_size):
        rows = w[r0 : r0 + block_size]
        row_ids = torch.arange(r0, r0 + rows.shape[0], device=w.device)
        for c0 in range(r0, n, block_size):  # upper block triangle: d is symmetric
            d = torch.cdist(
                rows, w[c0 : c0 + block_size], compute_mode="donot_use_mm_for_euclid_dist"
            )
            col_ids = torch.arange(c0, c0 + d.shape[1], device=w.device)
            d = d.masked_fill(row_ids[:, None] >= col_ids[None, :], float("inf"))
            best = torch.minimum(best, d.min())
    return best


def state_stats(
    w: torch.Tensor, e: torch.Tensor, w_avg: torch.Tensor, ict: float, block_size: int
) -> dict[str, float]:
    """The STATE_COLUMNS of latents w [N, w_dim] with embeddings e [N, D], blockwise."""
    nn_theta = nearest_angles(e, block_size)
    return dict(
        nn_angle_min=nn_theta.min().item(),
        nn_angle_mean=nn_theta.mean().item(),
        nn_angle_max=nn_theta.max().item(),
        frac_below_ict=(nn_theta < ict).double().mean().item(),
        latent_dist_min=min_latent_distance(w, block_size).item(),
        dist_w_avg_mean=(w - w_avg).norm(dim=-1).mean().item(),
    )


# ---------------------------------------------------------------------------------------------
# Interaction forces on latents.


def embed_all(embedder: nn.Module, w: torch.Tensor, batch_size: int) -> torch.Tensor:
    """e(w) [N, D] for w [N, w_dim], detached, in passes of at most ``batch_size``."""
    with torch.no_grad():
        parts = [embedder(w[s : s + batch_size]) for s in range(0, w.shape[0], batch_size)]
    return torch.cat(parts) if parts else w.new_zeros(0, 0)


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
) -> torch.Tensor:
    """F_i = -dU_i/dw_i for every identity, [N, w_dim]; one backward pass per batch."""
    forces = []
    for s in range(0, w.shape[0], batch_size):
        x = w[s : s + batch_size].detach().requires_grad_(True)
        index = torch.arange(s, s + x.shape[0], device=w.device)
        with torch.enable_grad():
            e = embedder(x)
            g = embedding_gradient(e, fixed, k, d0, block_size, index)
            if avoid is not None and avoid.shape[0]:
                g += embedding_gradient(
                    e, avoid, k, d0 if avoid_d0 is None else avoid_d0, block_size
                )
            (grad,) = torch.autograd.grad(e, x, grad_outputs=g)
        forces.append(-grad)
    return torch.cat(forces) if forces else torch.zeros_like(w)


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
            theta = angles(e_i, fixed.detach().to(e_i.dtype))[0]  # [N]
            others = torch.arange(w.shape[0], device=w.device) != i
            energy = repulsion(theta[others], k, d0).sum()
            if avoid is not None and avoid.shape[0]:
                radius = d0 if avoid_d0 is None else avoid_d0
                theta_avoid = angles(e_i, avoid.to(e_i.dtype))[0]  # [M]
                energy = energy + repulsion(theta_avoid, k, radius).sum()
            (grad,) = torch.autograd.grad(energy, x)
        forces[i] = -grad[0]
    return forces
