"""The samplers' statistics: one table row per iteration, written as CSV beside each store.

Identities (Langevin, random, reject) are summarised as a set: nearest-neighbour angles and
latent spread over all N identities, computed blockwise. Variations (Dispersion, DisCo) are
summarised per identity, then aggregated over the identities of a shard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from brownface.sampling.geometry import angle, cosines, min_latent_distance, nearest_angles

# ---------------------------------------------------------------------------------------------
# Identities.

IDENTITY_COLUMNS = (
    "nn_angle_min",  # angle (rad) to the nearest other identity: min over identities
    "nn_angle_mean",  # ... mean over identities
    "nn_angle_max",  # ... max over identities
    "frac_below_ict",  # fraction of identities whose nearest other identity is closer than ict
    "latent_dist_min",  # min_{i != j} ||w_i - w_j||
    "dist_w_avg_mean",  # mean ||w_i - w_avg||
)
FORCE_COLUMNS = tuple(
    f"force_{kind}_{agg}" for kind in ("interaction", "latent", "total") for agg in ("mean", "max")
)
LANGEVIN_COLUMNS = ("iteration", *IDENTITY_COLUMNS, *FORCE_COLUMNS, "dt", "wall_time")
DRAW_COLUMNS = ("iteration", *IDENTITY_COLUMNS, "candidates", "wall_time")  # random and reject


def identity_set_stats(
    w: torch.Tensor, e: torch.Tensor, w_avg: torch.Tensor, ict: float, block_size: int
) -> dict[str, float]:
    """The IDENTITY_COLUMNS of latents w [N, w_dim] with embeddings e [N, D], blockwise."""
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
# Variations.

VARIATION_COLUMNS = (
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


def variation_stats(
    theta: torch.Tensor,  # [G, A] angles to the reference
    e: torch.Tensor,  # [G, A, D] embeddings of the variations
    d: torch.Tensor,  # [G, A, A] latent distances between variations
    w: torch.Tensor,  # [G, A, w_dim]
    w_avg: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-identity numbers [G] of the variation table (its columns up to dist_w_avg)."""
    a = w.shape[1]
    off = ~torch.eye(a, dtype=torch.bool, device=w.device)
    intra = angle(cosines(e, e))[:, off]  # [G, A (A - 1)]
    return dict(
        angle_mean=theta.mean(1),
        angle_min=theta.amin(1),
        angle_max=theta.amax(1),
        intra_angle_mean=intra.mean(1),
        latent_spread=d[:, off].mean(1),
        dist_w_avg=(w - w_avg).norm(dim=-1).mean(1),
    )


def variation_row(
    iteration: int, per_id: list[dict[str, torch.Tensor]], keep: slice, seconds: float
) -> dict[str, float]:
    """Aggregate the per-identity statistics of a shard's identities into one table row."""
    row: dict[str, float] = {c: float("nan") for c in VARIATION_COLUMNS}
    row.update(iteration=float(iteration), wall_time=seconds)
    for name in per_id[0] if per_id else ():
        values = torch.cat([st[name] for st in per_id])[keep].double().cpu().numpy()
        if values.size:
            fn = np.min if name in _MINIMA else np.max if name in _MAXIMA else np.mean
            row[name] = float(fn(values))
    return row


def stats_table(rows: list[dict[str, float]], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows as a table with these columns, the iteration as an integer."""
    table = pd.DataFrame(rows, columns=list(columns))
    return table.astype({"iteration": np.int64})
