"""Covariate directions: one linear SVM per factor on projected Multi-PIE latents.

As face_synthetics ``latent_analysis.py`` (research notes, reference-implementation §6), each
factor is a ``LinearSVC(fit_intercept=False, C=1.0, max_iter=10000)`` (squared hinge, L2) on the
raw W coordinates: no centring, no scaling, a hyperplane through the origin. Label 1 is the
positive side, so the unit normal n points from label 0 to label 1: towards the right-hand
cameras (pose), the right-hand flashes (illumination) and the expression (smile, ...).

Statistics of the signed distances s = w . n of all training latents of the two classes are
split by the *sign* of s, not by label: ``pos_mean``/``pos_std``/``n_pos`` over s > 0,
``neg_mean``/``neg_std``/``n_neg`` over s < 0. The edit unit is E = max(-neg_mean, pos_mean)
(stored as ``scale``), which DisCo and :mod:`brownface.covariates.edit` use. ``accuracy`` is
the mean 5-fold stratified cross-validated *balanced* accuracy (the mean of the two per-class
recalls) of the same classifier: each subject has four or five neutral recordings but one of
each expression, so plain accuracy would credit a classifier that calls every face neutral
with about 0.83.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import LinearSVC

from brownface.covariates.multipie import MultiPieImage
from brownface.covariates.reader import COVARIATES, SubsetRules, select_subsets
from brownface.errors import UserError
from brownface.store import CovariateStore, ProjectionStore

log = logging.getLogger(__name__)

SVM_C = 1.0
SVM_MAX_ITER = 10_000
FOLDS = 5


@dataclass(frozen=True)
class DirectionFit:
    """One fitted direction and the statistics stored with it."""

    normal: np.ndarray  # [w_dim] float64, unit norm, towards label 1
    pos_mean: float
    pos_std: float
    neg_mean: float
    neg_std: float
    accuracy: float  # cross-validated balanced accuracy; NaN when a class is too small to split
    n_pos: int  # latents with s > 0
    n_neg: int  # latents with s < 0

    @property
    def scale(self) -> float:
        """The edit unit E = max(-neg_mean, pos_mean)."""
        return max(-self.neg_mean, self.pos_mean)


def _svm(seed: int) -> LinearSVC:
    return LinearSVC(
        fit_intercept=False, C=SVM_C, max_iter=SVM_MAX_ITER, dual="auto", random_state=seed
    )


def _stats(s: np.ndarray) -> tuple[float, float]:
    return (float(s.mean()), float(s.std())) if s.size else (float("nan"), float("nan"))


def fit_direction(
    w: np.ndarray,  # [n, w_dim] latents
    labels: np.ndarray,  # [n] in {0, 1}
    *,
    seed: int = 0,  # SVM and fold shuffling
    folds: int = FOLDS,
    name: str = "direction",  # for messages
) -> DirectionFit:
    """Fit one LinearSVC; normal, sign-split distance statistics and cross-validated accuracy."""
    w = np.asarray(w, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    counts = [int((labels == c).sum()) for c in (0, 1)]
    if min(counts) == 0 or counts[0] + counts[1] != labels.size:
        raise UserError(
            f"covariate {name}: needs latents of both classes, got {counts[0]} of label 0 "
            f"and {counts[1]} of label 1"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported below instead
        svm = _svm(seed).fit(w, labels)
        splits = min(folds, *counts)
        accuracy = float("nan")
        if splits >= 2:
            cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
            scores = cross_val_score(_svm(seed), w, labels, cv=cv, scoring="balanced_accuracy")
            accuracy = float(scores.mean())
    if svm.n_iter_ >= SVM_MAX_ITER:
        log.warning("covariate %s: LinearSVC stopped at max_iter=%d", name, SVM_MAX_ITER)
    if splits < folds:
        log.warning(
            "covariate %s: only %d-fold cross-validation (class sizes %s)", name, splits, counts
        )
    normal = svm.coef_[0] / np.linalg.norm(svm.coef_[0])
    s = w @ normal
    pos_mean, pos_std = _stats(s[s > 0])
    neg_mean, neg_std = _stats(s[s < 0])
    return DirectionFit(
        normal,
        pos_mean,
        pos_std,
        neg_mean,
        neg_std,
        accuracy,
        int((s > 0).sum()),
        int((s < 0).sum()),
    )


def covariate_store(
    fits: Mapping[str, DirectionFit], provenance: Mapping[str, Any] | None = None
) -> CovariateStore:
    """The fits as a covariates store (rows in the mapping's order)."""

    def col(attr: str, dtype=np.float32) -> np.ndarray:
        return np.array([getattr(f, attr) for f in fits.values()], dtype=dtype)

    return CovariateStore(
        name=np.array(list(fits), dtype=object),
        direction=np.stack([f.normal for f in fits.values()]).astype(np.float32),
        scale=col("scale"),
        pos_mean=col("pos_mean"),
        pos_std=col("pos_std"),
        neg_mean=col("neg_mean"),
        neg_std=col("neg_std"),
        accuracy=col("accuracy"),
        n_pos=col("n_pos", np.int64),
        n_neg=col("n_neg", np.int64),
        provenance=dict(provenance or {}),
    )


def _images(store: ProjectionStore) -> list[MultiPieImage]:
    return [
        MultiPieImage(int(s), int(se), int(r), str(c), int(f))
        for s, se, r, c, f in zip(
            store.subject, store.session, store.recording, store.camera, store.flash
        )
    ]


def fit_covariate_directions(
    projections: str | Path,  # projections.h5
    out: str | Path,  # covariates.h5
    rules: SubsetRules | None = None,
    *,
    max_loss: float | None = None,  # exclude projections above it; None = the store's max_loss
    seed: int = 0,
    folds: int = FOLDS,
    provenance: Mapping[str, Any] | None = None,
) -> CovariateStore:
    """Fit the seven directions (pose, illumination, five expressions) and write covariates.h5."""
    rules = rules or SubsetRules()
    store = ProjectionStore.read(projections)
    if max_loss is None:
        max_loss = float(store.attrs.get("max_loss", np.inf))
    good = store.loss <= max_loss
    if not good.all():
        log.warning(
            "%s: %d of %d projections have loss > %g and are not fitted",
            projections,
            int((~good).sum()),
            len(store),
            max_loss,
        )
    subsets = select_subsets(_images(store), rules)
    fits, counts = {}, {}
    for name in COVARIATES:
        sub = subsets[name]
        rows, labels = sub.index[good[sub.index]], sub.labels[good[sub.index]]
        fits[name] = fit_direction(store.w[rows], labels, seed=seed, folds=folds, name=name)
        counts[name] = [int((labels == 0).sum()), int((labels == 1).sum())]
        log.info(
            "%s: balanced accuracy %.3f, label 0/1 %d/%d, E %.3f",
            name, fits[name].accuracy, *counts[name], fits[name].scale,
        )  # fmt: skip
    result = covariate_store(
        fits,
        {
            **(provenance or {}),
            "stage": "covariates",
            "projections": str(projections),
            "subsets": rules.to_dict(),
            "label_counts": counts,  # [label 0, label 1] per direction
            "max_loss": max_loss,
            "seed": int(seed),
            "folds": folds,
            "svm": {"C": SVM_C, "max_iter": SVM_MAX_ITER, "fit_intercept": False},
        },
    )
    result.write(out)
    return result
