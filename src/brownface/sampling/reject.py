"""Reject: accept a random draw as a new identity only if it is far from every accepted one.

Candidate c (z from ("identities/reject", c)) is accepted when the angle between its embedding
and every identity accepted before it is at least ``ict`` (and, with an avoid set, at least
``avoid_d0`` from every avoid embedding). Candidates are embedded ``batch_size`` at a time but
accepted strictly in candidate order, as in the one-at-a-time definition.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from brownface.errors import UserError
from brownface.runlog import progress
from brownface.sampling.embedder import embed_all
from brownface.sampling.geometry import angle, cosines
from brownface.sampling.langevin import Identities, IdentityParams, where
from brownface.sampling.stats import DRAW_COLUMNS, identity_set_stats, stats_table
from brownface.seeding import normal_rows


def sample_reject(
    embedder: nn.Module,
    params: IdentityParams,
    seed: int,
    truncation_psi: float,  # truncation of every candidate
    avoid: torch.Tensor | None = None,  # [M, D]: also reject candidates within avoid_d0 of these
) -> Identities:
    """params.n identities by rejection sampling (see the module docstring)."""
    t0 = time.perf_counter()
    n, tries, at = params.n, params.tries, where(embedder)
    w_acc: torch.Tensor | None = None  # [n, w_dim] and [n, D] once the first batch is embedded
    e_acc: torch.Tensor | None = None
    count = tried = 0
    with progress(n, "identities (reject)") as bar:
        while count < n and tried < tries:
            ids = range(tried, min(tried + params.batch_size, tries))
            z = normal_rows(seed, "identities/reject", ids, embedder.z_dim).to(**at)
            with torch.no_grad():
                w = embedder.mapping(z, truncation_psi=truncation_psi)
            e = embed_all(embedder, w, params.batch_size)
            if w_acc is None or e_acc is None:
                w_acc, e_acc = w.new_empty(n, w.shape[1]), e.new_empty(n, e.shape[1])
            for c in range(len(ids)):
                tried += 1
                ok = count == 0 or bool(
                    angle(cosines(e[c : c + 1], e_acc[:count])).min() >= params.ict
                )
                if ok and avoid is not None and avoid.shape[0]:
                    theta = angle(cosines(e[c : c + 1], avoid.to(e.dtype)))
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
    row = dict(
        iteration=0, **identity_set_stats(w, e, embedder.w_avg, params.ict, params.block_size)
    )
    row.update(candidates=tried, wall_time=time.perf_counter() - t0)
    return Identities(w, e, stats_table([row], DRAW_COLUMNS))
