"""Identity capacity: how many identities the generator holds apart under an FR network.

Langevin is run for increasing N (the capacity rule); at the end of each run this module reads
the identities and records the fraction with a neighbour inside ICT, the mean nearest angle and
a count of distinct identities: the size of a greedy packing, in identity order, of identities
pairwise at least ICT apart. While N is below the generator's capacity under this FR, the
packing keeps nearly all N; past it the count levels off, and where it levels off estimates
how many identities the generator can give that the FR tells apart.

The world knows the truth: its identity space is continuous, so two of its faces are the same
person only when both reproduce the same training identity. The true count of distinct people
among N is then the faces of their own plus the distinct training identities drawn, shown
beside the FR's estimate (with the angles between the true identity vectors).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brownface.sampling.geometry import angle, cosines, nearest_angles
from brownface.store import IdentityStore, atomic_path

BLOCK = 4096
CAPACITY_COLUMNS = (
    "n",
    "frac_below_ict",  # identities with a neighbour inside ICT (the FR's embeddings)
    "nn_angle_mean_deg",
    "distinct",  # greedy packing at ICT
    "true_distinct",  # the world: faces of their own + distinct training identities drawn
    "true_frac_repeated",  # the world: identities that share their person with another
    "true_nn_angle_mean_deg",  # the world: nearest angle between true identity vectors
)


def greedy_distinct(e: torch.Tensor, ict: float, block: int = BLOCK) -> int:
    """Identities kept when each is kept only if at least ``ict`` (radians) from every one
    kept before it, in row order (a maximal packing; deterministic). Rows are compared with
    the earlier blocks' kept rows in one product, then one by one within their block."""
    e = e / e.norm(dim=1, keepdim=True)
    kept = e.new_zeros(0, e.shape[1])
    for start in range(0, e.shape[0], block):
        rows = e[start : start + block]
        free = torch.ones(rows.shape[0], dtype=torch.bool)
        if kept.shape[0]:
            free = angle(cosines(rows, kept)).amin(1) >= ict
        new: list[int] = []
        for i in torch.nonzero(free).flatten().tolist():
            if not new or float(angle(cosines(rows[i : i + 1], rows[new])).min()) >= ict:
                new.append(i)
        kept = torch.cat([kept, rows[new]])
    return int(kept.shape[0])


def capacity_row(
    store: IdentityStore, ict: float, generator: torch.nn.Module | None = None
) -> dict[str, float]:
    """The capacity measures of one Langevin run's identities; with the world generator
    (``training_identity``), its ground truth too (NaN otherwise)."""
    e = torch.from_numpy(store.embedding).double()
    e = e / e.norm(dim=1, keepdim=True)
    nn = nearest_angles(e, BLOCK)
    row = {
        "n": int(len(store.identity)),
        "frac_below_ict": float((nn < ict).double().mean()),
        "nn_angle_mean_deg": math.degrees(float(nn[torch.isfinite(nn)].mean())),
        "distinct": greedy_distinct(e, ict),
        "true_distinct": math.nan,
        "true_frac_repeated": math.nan,
        "true_nn_angle_mean_deg": math.nan,
    }
    if generator is not None and hasattr(generator, "training_identity"):
        w = torch.from_numpy(store.w).to(generator.w_avg)
        with torch.no_grad():
            person = generator.training_identity(w).cpu().numpy()
            true = generator.identity_params(w).double().cpu()
        drawn, counts = np.unique(person[person >= 0], return_counts=True)
        repeated = np.isin(person, drawn[counts > 1])
        true_nn = nearest_angles(true / true.norm(dim=1, keepdim=True), BLOCK)
        row.update(
            true_distinct=int((person < 0).sum() + drawn.size),
            true_frac_repeated=float(repeated.mean()),
            true_nn_angle_mean_deg=math.degrees(float(true_nn[torch.isfinite(true_nn)].mean())),
        )
    return row


def capacity_table(
    stores: Mapping[int, str | Path], ict: float, generator: torch.nn.Module | None = None
) -> pd.DataFrame:
    """One row per N (sorted), CAPACITY_COLUMNS."""
    rows = [capacity_row(IdentityStore.read(stores[n]), ict, generator) for n in sorted(stores)]
    return pd.DataFrame(rows, columns=list(CAPACITY_COLUMNS))


def write_capacity(table: pd.DataFrame, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
