"""Angles between embeddings and distances between latents, the two metrics of the samplers.

The distance between two identities is the angle between their FR embeddings, in radians, as
in the paper. :func:`angle` is the one place brownface turns cosines into angles. The reference
implementation computes arccos(0.999999 cos), which keeps arccos's derivative
-1 / sqrt(1 - cos^2) finite but shifts every angle slightly; we keep angles exact and clamp cos
to [-1 + 1e-6, 1 - 1e-6] only where a gradient flows through the angle (the Langevin and
Dispersion forces, ``grad_safe=True``). Statistics and reject's test only clip cos to [-1, 1],
which rounding can leave.

Cosines come in two layouts (:func:`cosines`): all pairs of two sets of rows (a matrix product)
and row by row (an elementwise product). They round differently, so each caller keeps the one
it has always used. The blockwise helpers hold at most ``block_size`` rows of a pairwise
matrix at a time, so nothing is ever N x N.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

COS_EPS = 1e-6  # clamp margin of grad_safe angles


def cosines(a: torch.Tensor, b: torch.Tensor, pairwise: bool = True) -> torch.Tensor:
    """Cosine similarities of the rows of a and b (normalised here).

    pairwise: a [..., N, D], b [..., M, D] -> [..., N, M]; else row by row, a and b [..., D]
    broadcast against each other -> [...].
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.transpose(-1, -2) if pairwise else (a * b).sum(-1)


def angle(cos: torch.Tensor, grad_safe: bool = False) -> torch.Tensor:
    """arccos(cos) in radians; ``grad_safe`` clamps cos to 1e-6 inside [-1, 1] (see above)."""
    margin = COS_EPS if grad_safe else 0.0
    return torch.arccos(cos.clamp(-1 + margin, 1 - margin))


def nearest_angles(e: torch.Tensor, block_size: int) -> torch.Tensor:
    """Angle from each row of e [N, D] to its nearest other row, [N] (inf when N == 1)."""
    n = e.shape[0]
    out = torch.full((n,), float("inf"), dtype=e.dtype, device=e.device)
    for r0 in range(0, n, block_size):
        rows = e[r0 : r0 + block_size]
        row_ids = torch.arange(r0, r0 + rows.shape[0], device=e.device)
        for c0 in range(0, n, block_size):
            theta = angle(cosines(rows, e[c0 : c0 + block_size]))
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
            d = latent_distances(rows, w[c0 : c0 + block_size])
            col_ids = torch.arange(c0, c0 + d.shape[1], device=w.device)
            d = d.masked_fill(row_ids[:, None] >= col_ids[None, :], float("inf"))
            best = torch.minimum(best, d.min())
    return best


def latent_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a_i - b_j|| [..., N, M] for a [..., N, w_dim], b [..., M, w_dim], from differences
    (no Gram-matrix cancellation, so nearby latents keep their small distances)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
