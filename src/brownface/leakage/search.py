"""Nearest real identity of every synthetic one, blockwise, and the thresholds that call a
pair "the same person".

The search is a blocked matrix product: ``rows`` synthetic embeddings against ``cols`` real
ones at a time (one reused output buffer), keeping each synthetic row's best cosine and its
index. Memory is the inputs plus ``rows x cols`` floats, never the N x M matrix (100k
synthetic x 70k real identities, FFHQ's size, would be 28 GB). Ties keep the lowest real
index, so the answer does not depend on the block sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from brownface.errors import UserError

# A 1024 x 4096 block (16 MiB) is still in cache when its row maxima are taken; with larger
# blocks that pass over memory cost up to a fifth of the matmul's time (benchmarks/leakage.py).
ROWS = 1024  # synthetic embeddings per block
COLS = 4096  # real embeddings per block


@dataclass(frozen=True)
class Nearest:
    """For each synthetic embedding: its most similar real embedding and their cosine."""

    index: torch.Tensor  # [N] int64, row of the real embeddings
    cosine: torch.Tensor  # [N] float32

    def angles(self) -> torch.Tensor:
        """The nearest angles in radians (what ICT and the FR thresholds are compared with)."""
        return torch.arccos(self.cosine.clamp(-1.0, 1.0))


def nearest_real(
    synthetic: torch.Tensor, real: torch.Tensor, rows: int = ROWS, cols: int = COLS
) -> Nearest:
    """The nearest real embedding (largest cosine) of each synthetic one; both [*, D] and unit
    length (as FR embeddings are stored)."""
    if synthetic.ndim != 2 or real.ndim != 2 or synthetic.shape[1] != real.shape[1]:
        raise UserError(
            f"leakage search: expected [N, D] and [M, D] embeddings, got "
            f"{list(synthetic.shape)} and {list(real.shape)}"
        )
    if real.shape[0] == 0:
        raise UserError("leakage search: no real embeddings to compare with")
    synthetic, real = synthetic.float().contiguous(), real.float().contiguous()
    n, m = synthetic.shape[0], real.shape[0]
    best = torch.full((n,), -torch.inf)
    index = torch.zeros(n, dtype=torch.long)
    buffer = torch.empty(min(rows, n), min(cols, m))
    real_t = real.T
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        block_best, block_index = best[r0:r1], index[r0:r1]
        for c0 in range(0, m, cols):
            c1 = min(c0 + cols, m)
            sims = buffer[: r1 - r0, : c1 - c0]
            torch.mm(synthetic[r0:r1], real_t[:, c0:c1], out=sims)
            value, arg = sims.max(dim=1)  # the first maximum of the block on ties
            better = value > block_best  # earlier blocks keep ties
            block_best[better] = value[better]
            block_index[better] = arg[better] + c0
    return Nearest(index=index, cosine=best)


def closest_pairs(nearest: Nearest, k: int) -> list[tuple[int, int, float]]:
    """The ``k`` closest (synthetic, real, cosine) pairs, each real identity used once: the
    synthetic identities by decreasing cosine to their nearest real one, skipping a real one
    already taken by a closer synthetic identity (ties by the lower synthetic index)."""
    cos = nearest.cosine.numpy()
    order = np.lexsort((np.arange(cos.size), -cos.astype(np.float64)))
    taken: set[int] = set()
    pairs = []
    for i in order:
        j = int(nearest.index[i])
        if j in taken:
            continue
        taken.add(j)
        pairs.append((int(i), j, float(cos[i])))
        if len(pairs) == k:
            break
    return pairs


def cosine_threshold_at_far(impostor_cosines: np.ndarray, far: float) -> float:
    """The lowest cosine t with FAR(t) = P(impostor cosine > t) <= ``far``: a pair is called the
    same person above it. From impostor pairs of a verification set; -1 if ``far`` >= 1.
    (Not ``evaluate.verification.threshold_at_far``: that is insightface's interpolated
    distance threshold of the verification protocol.)"""
    scores = np.sort(np.asarray(impostor_cosines, dtype=np.float64))[::-1]
    if scores.size == 0:
        raise UserError("leakage threshold: no impostor pairs")
    if not 0 < far:
        raise UserError(f"leakage threshold: expected a FAR > 0, got {far}")
    k = int(np.floor(far * scores.size + 1e-9))  # 0.29 x 100 is 28.999...
    return -1.0 if k >= scores.size else float(scores[k])


def leaked_fraction(nearest: Nearest, threshold: float) -> float:
    """The fraction of synthetic identities whose nearest real one is above ``threshold``."""
    return float((nearest.cosine > threshold).double().mean())
