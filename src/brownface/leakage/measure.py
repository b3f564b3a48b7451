"""The leakage measure: how many synthetic identities are "the same person" as a real one.

For every synthetic identity (its reference embedding, or every variation), the nearest real
identity by angle (``search.nearest_real``). A synthetic identity has leaked when that angle
is below the reference FR's threshold at a FAR, the threshold measured on a verification set's
impostor pairs (the network says "same person" for a fraction FAR of different people there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from brownface.evaluate.ijb_eval import far_key
from brownface.leakage.search import (
    Nearest,
    closest_pairs,
    cosine_threshold_at_far,
    leaked_fraction,
    nearest_real,
)

FARS: tuple[float, ...] = (1e-3, 1e-4)
HISTOGRAM_BINS = 90  # one degree wide, 0..90 degrees


@dataclass(frozen=True)
class Leakage:
    """The measure of one synthetic set against one real set (JSON via :meth:`to_dict`)."""

    synthetic: int  # identities (or images) measured
    real: int  # real identities searched
    thresholds: dict[str, dict[str, float]]  # FAR -> {cosine, degrees}
    leaked: dict[str, float]  # FAR -> fraction of synthetic identities below its threshold
    nearest_degrees: dict[str, float]  # summary of the nearest-real angles
    histogram: dict[str, list]  # bin edges (degrees) and counts of the nearest-real angles
    closest: list[dict[str, object]]  # the k closest pairs, each real identity once
    truth: dict[str, object] | None = None  # the world's ground truth and the FR's agreement
    nearest: Nearest | None = None  # per synthetic row (not in the JSON)

    def called(self, far_key: str) -> np.ndarray:
        """[N] bool: the rows closer to a real identity than the threshold at a FAR key."""
        if self.nearest is None:
            raise ValueError("Leakage.called: the per-row nearest cosines were not kept")
        return (self.nearest.cosine > self.thresholds[far_key]["cosine"]).numpy()

    def to_dict(self) -> dict[str, object]:
        return {
            **({} if self.truth is None else {"truth": self.truth}),
            "synthetic": self.synthetic,
            "real": self.real,
            "thresholds": self.thresholds,
            "leaked": self.leaked,
            "nearest_degrees": self.nearest_degrees,
            "histogram": self.histogram,
            "closest": self.closest,
        }


def measure_leakage(
    synthetic: torch.Tensor,  # [N, D] unit embeddings of the synthetic identities
    real: torch.Tensor,  # [M, D] unit embeddings of the real identities
    impostor_cosines: np.ndarray,  # the reference FR's cosines of a verification set's impostors
    *,
    fars: Sequence[float] = FARS,
    k: int = 10,
    synthetic_names: Sequence[str] | None = None,
    real_names: Sequence[str] | None = None,
    truly_leaked: np.ndarray | None = None,  # [N] bool: the synthetic identity is a real one
) -> Leakage:
    """Thresholds at each FAR, the leaked fractions, the nearest-angle distribution and the
    ``k`` closest pairs (with names when given); with the ground truth, the truly leaked
    fraction and the precision and recall of the FR's call at each FAR."""
    nearest: Nearest = nearest_real(synthetic, real)
    degrees = torch.rad2deg(nearest.angles()).numpy().astype(np.float64)
    if truly_leaked is not None and np.shape(truly_leaked) != (synthetic.shape[0],):
        raise ValueError(
            f"truly_leaked: expected [{synthetic.shape[0]}], got {list(np.shape(truly_leaked))}"
        )
    thresholds, leaked, agreement = {}, {}, {}
    for far in fars:
        t = cosine_threshold_at_far(impostor_cosines, far)
        thresholds[far_key(far)] = {"cosine": t, "degrees": math.degrees(math.acos(max(-1, t)))}
        leaked[far_key(far)] = leaked_fraction(nearest, t)
        if truly_leaked is not None:
            called = (nearest.cosine > t).numpy()
            agreement[far_key(far)] = dict(truth_agreement(called, truly_leaked))
    truth = None
    if truly_leaked is not None:
        truth = {"leaked": float(np.mean(truly_leaked, dtype=np.float64)), "agreement": agreement}
    counts, edges = np.histogram(degrees, bins=HISTOGRAM_BINS, range=(0.0, 90.0))
    pairs = []
    for s, r, cos in closest_pairs(nearest, k):
        pair = {"synthetic": s, "real": r, "degrees": math.degrees(math.acos(min(1.0, cos)))}
        if synthetic_names is not None:
            pair["synthetic_name"] = str(synthetic_names[s])
        if real_names is not None:
            pair["real_name"] = str(real_names[r])
        pairs.append(pair)
    summary = {
        "min": float(degrees.min()),
        "p01": float(np.percentile(degrees, 1)),
        "median": float(np.median(degrees)),
        "mean": float(degrees.mean()),
    }
    return Leakage(
        synthetic=int(synthetic.shape[0]),
        real=int(real.shape[0]),
        thresholds=thresholds,
        leaked=leaked,
        nearest_degrees=summary,
        histogram={"edges": edges.tolist(), "counts": counts.tolist()},
        closest=pairs,
        truth=truth,
        nearest=nearest,
    )


def truth_agreement(leaked: np.ndarray, truly_leaked: np.ndarray) -> Mapping[str, float | None]:
    """Precision and recall of "leaked" (the FR's call) against the ground truth (the world
    knows which synthetic identity is a training identity); None where undefined."""
    leaked, truth = np.asarray(leaked, bool), np.asarray(truly_leaked, bool)
    hits = int((leaked & truth).sum())
    return {
        "precision": hits / int(leaked.sum()) if leaked.any() else None,
        "recall": hits / int(truth.sum()) if truth.any() else None,
    }
