"""IJB-B / IJB-C 1:1 verification scoring, the standard protocol (insightface ``eval_ijbc.py``).

From per-image features to TAR at FAR (``shared/notes/formats.md`` section 7):

1. image feature = raw(img) + raw(flipped img) (``use_flip``), with no per-image normalisation
   (``use_norm_score``; off = L2-normalise each image), times the detector score
   (``use_detector_score``);
2. template feature: images of one media are averaged, the media are summed, and the template
   vector is L2-normalised;
3. pair score: cosine of the two template vectors, from blocks of template-by-template
   matrix products and index gathers (IJB-C has ~15.7M pairs; no Python loop over pairs or
   templates);
4. ROC with scikit-learn's ``roc_curve``; TAR at each FAR by the ROC point closest to it, ties
   going to the larger TAR (what insightface's ``min`` over ``(|fpr - far|, index)`` on the
   flipped arrays picks).

The defaults are the standard switches; the others are the ablations users know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_curve

from brownface.errors import UserError

#: The FARs of the IJB tables.
FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
TEMPLATE_BLOCK = 2048  # first templates per matrix product in pair_scores


@dataclass(frozen=True)
class IJBSwitches:
    """The protocol's switches; the defaults are the standard evaluation."""

    use_flip: bool = True  # add the flipped image's feature
    use_detector_score: bool = True  # weight each image by its detector score
    use_norm_score: bool = True  # True = keep the feature norm (no per-image normalisation)


def image_features(
    features: np.ndarray,  # [N, D] raw features, or [N, 2, D] (original, flipped)
    detector_scores: np.ndarray,  # [N]
    switches: IJBSwitches = IJBSwitches(),
) -> np.ndarray:
    """Per-image features [N, D] as the protocol combines them (step 1)."""
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim == 3:
        feats = feats[:, 0] + feats[:, 1] if switches.use_flip else feats[:, 0]
    elif switches.use_flip:
        raise ValueError("use_flip needs features of shape [N, 2, D] (original, flipped)")
    if not switches.use_norm_score:
        feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    if switches.use_detector_score:
        feats = feats * np.asarray(detector_scores, dtype=np.float32)[:, None]
    return feats


@dataclass
class TemplateFeatures:
    templates: np.ndarray  # [T] sorted template ids
    features: np.ndarray  # [T, D] L2-normalised

    def rows(self, ids: np.ndarray, what: str) -> np.ndarray:
        """Row of each template id; one clear error for an id no image belongs to."""
        rows = np.searchsorted(self.templates, ids)
        rows = np.minimum(rows, len(self.templates) - 1)
        unknown = self.templates[rows] != ids
        if unknown.any():
            raise UserError(f"{what}: template {int(ids[unknown][0])} has no images")
        return rows


def template_features(
    image_feats: np.ndarray,  # [N, D]
    template_ids: np.ndarray,  # [N]
    media_ids: np.ndarray,  # [N]
) -> TemplateFeatures:
    """Mean within each media, sum over a template's media, L2-normalise (step 2)."""
    feats = torch.from_numpy(np.ascontiguousarray(image_feats, dtype=np.float32))
    pairs = np.stack([np.asarray(template_ids), np.asarray(media_ids)], 1)
    media, media_of_image = np.unique(pairs, axis=0, return_inverse=True)
    index = torch.from_numpy(media_of_image.reshape(-1))
    sums = torch.zeros(len(media), feats.shape[1]).index_add_(0, index, feats)
    counts = torch.bincount(index, minlength=len(media)).to(sums.dtype)
    means = sums / counts[:, None]
    templates, template_of_media = np.unique(media[:, 0], return_inverse=True)
    out = torch.zeros(len(templates), feats.shape[1])
    out.index_add_(0, torch.from_numpy(template_of_media.reshape(-1)), means)
    out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return TemplateFeatures(templates, out.numpy())


def pair_scores(
    templates: TemplateFeatures,
    t1: np.ndarray,
    t2: np.ndarray,
    block: int = TEMPLATE_BLOCK,
) -> np.ndarray:
    """Cosine score of each template pair (step 3), [P] float32.

    Pairs are grouped by their first template; each block of first templates is scored
    against every template with one matrix product ([block, T], a few hundred MB at IJB-C
    size), and the pairs' scores are gathered from it. Compute-bound, where gathering two
    512-d rows per pair would move ~64 GB through memory for IJB-C's 15.7M pairs.
    """
    r1 = templates.rows(np.asarray(t1), "IJB template pair list")
    r2 = templates.rows(np.asarray(t2), "IJB template pair list")
    feats = torch.from_numpy(templates.features)
    order = np.argsort(r1, kind="stable")
    sorted_r1 = r1[order]
    scores = np.empty(len(r1), dtype=np.float32)
    for start in range(0, len(feats), block):
        lo, hi = np.searchsorted(sorted_r1, [start, start + block])
        if lo == hi:
            continue
        sims = (feats[start : start + block] @ feats.T).numpy()
        rows = order[lo:hi]
        scores[rows] = sims[r1[rows] - start, r2[rows]]
    return scores


def tar_at_far(
    labels: np.ndarray, scores: np.ndarray, fars: Sequence[float] = FARS
) -> dict[float, float]:
    """TAR at each FAR from the ROC (step 4): the point with the FPR closest to the target,
    ties to the larger TAR."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise UserError("IJB pair list: needs genuine and impostor pairs, got one kind only")
    fpr, tpr, _ = roc_curve(labels, scores)
    out = {}
    for far in fars:
        distance = np.abs(fpr - far)
        out[float(far)] = float(tpr[distance == distance.min()].max())
    return out
