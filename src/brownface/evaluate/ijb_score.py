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
import pandas as pd
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


def roc_points(labels: np.ndarray, scores: np.ndarray, n_points: int = 2000) -> pd.DataFrame:
    """The ROC as a table ``far, tar, threshold`` for plotting: at ``n_points`` FARs spaced
    evenly on a log axis from 1 / (impostor pairs) to 1, the best TAR with FPR <= that FAR
    (the ROC is a step function there). IJB-C's full ROC has millions of points."""
    labels = np.asarray(labels)
    fpr, tpr, thr = roc_curve(labels, scores)
    lowest = 1.0 / max(int((labels == 0).sum()), 1)
    fars = np.geomspace(lowest, 1.0, n_points)
    idx = np.searchsorted(fpr, fars, side="right") - 1
    table = pd.DataFrame({"far": fpr[idx], "tar": tpr[idx], "threshold": thr[idx]})
    table = table[table["far"] > 0].drop_duplicates("far", keep="last")
    return table.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 1:N identification (insightface ``ijb_1n.py``).

RANKS: tuple[int, ...] = (1, 5, 10)
FPIRS: tuple[float, ...] = (0.01, 0.1)
PROBE_BLOCK = 4096  # probes per similarity block


@dataclass
class IdentificationResult:
    ranks: dict[int, float]  # fraction of probes whose mate is within the top k
    tpir_at_fpir: dict[float, float]
    n_probes: int
    n_gallery: int


def identification(
    templates: TemplateFeatures,
    gallery_templates: np.ndarray,
    gallery_subjects: np.ndarray,
    probe_templates: np.ndarray,
    probe_subjects: np.ndarray,
    ranks: Sequence[int] = RANKS,
    fpirs: Sequence[float] = FPIRS,
    block: int = PROBE_BLOCK,
) -> IdentificationResult:
    """Closed-set ranks and TPIR at FPIR of the probes searched against the gallery.

    Scores are cosines of the template features. Rank k: the mate scores among the top k of
    its gallery, ties broken by gallery order (a stable sort of the scores, descending). TPIR
    at FPIR f, as insightface computes it: the threshold is the ceil(Q f)-th largest of all
    Q (G - 1) non-mate scores, and TPIR the fraction of mate scores strictly above it. Probes
    are scored in blocks of ``block`` against the whole gallery; only the needed largest
    non-mate scores are kept between blocks (a running top-k).
    """
    gallery_subjects = np.asarray(gallery_subjects)
    order = np.argsort(gallery_subjects, kind="stable")
    pos = np.searchsorted(gallery_subjects[order], probe_subjects)
    pos = np.minimum(pos, len(order) - 1)
    missing = gallery_subjects[order][pos] != probe_subjects
    if missing.any():
        raise UserError(
            f"IJB 1:N probe subject {int(np.asarray(probe_subjects)[missing][0])} has no gallery "
            "template; the mixed probes are searched against the galleries together"
        )
    mate = torch.from_numpy(order[pos])  # gallery column of each probe's mate
    g = torch.from_numpy(templates.features[templates.rows(gallery_templates, "IJB 1:N gallery")])
    q_rows = templates.rows(probe_templates, "IJB 1:N probes")
    need = [max(1, int(np.ceil(len(q_rows) * f))) for f in fpirs]
    k_max = max(need)
    n_q, n_g = len(q_rows), len(g)
    if k_max > n_q * (n_g - 1):
        raise UserError(
            f"IJB 1:N: {n_q * (n_g - 1)} non-mate scores, fewer than the {k_max} FPIR "
            f"{max(fpirs)} needs; the gallery needs more subjects"
        )
    mate_scores = torch.empty(n_q)
    mate_rank = torch.empty(n_q, dtype=torch.long)
    top_nonmate = torch.empty(0)
    for start in range(0, n_q, block):
        q = torch.from_numpy(templates.features[q_rows[start : start + block]])
        sims = q @ g.T  # [b, G]
        m = mate[start : start + block]
        ms = sims.gather(1, m[:, None])  # [b, 1]
        cols = torch.arange(n_g)[None]
        above = (sims > ms) | ((sims == ms) & (cols < m[:, None]))
        mate_rank[start : start + block] = above.sum(1) + 1
        mate_scores[start : start + block] = ms[:, 0]
        nonmate = sims.scatter(1, m[:, None], float("-inf")).flatten()
        pool = torch.cat([top_nonmate, nonmate])
        top_nonmate = pool.topk(min(k_max, len(pool))).values
    result_ranks = {int(k): float((mate_rank <= k).double().mean()) for k in ranks}
    tpir = {
        float(f): float((mate_scores > top_nonmate[k - 1]).double().mean())
        for f, k in zip(fpirs, need, strict=True)
    }
    return IdentificationResult(result_ranks, tpir, n_q, n_g)
