"""Face-verification accuracy by the insightface protocol, on ``.bin`` sets and original LFW.

The protocol (insightface ``recognition/arcface_torch/eval/verification.py``, reused by AdaFace):

1. Each image is embedded as is and mirrored left-right; the two RAW embeddings are summed and the
   sum is L2-normalised ("sum raw, then normalise").
2. The distance of a pair is the squared Euclidean distance of those unit vectors (= 2 - 2 cos);
   a pair is called "same" iff distance < threshold.
3. Ten contiguous folds (sklearn ``KFold(10)``, no shuffle). For each fold the threshold in
   ``arange(0, 4, 0.01)`` with the best accuracy on the other nine (the first maximum) is applied
   to the held-out fold.
4. Reported: mean and population std (``np.std``) of the ten fold accuracies, and VAL@FAR=1e-3.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from brownface.errors import UserError
from brownface.evaluate.binfile import decode_image, read_bin
from brownface.evaluate.lfw import pair_paths, read_pairs
from brownface.store import atomic_path

# Float images [B, 3, H, W], RGB, in [-1, 1], on the model's device -> raw embeddings [B, D].
EmbedFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int], None]  # called with the number of images embedded so far

ACC_THRESHOLDS = np.arange(0, 4, 0.01)  # accuracy sweep
VAL_THRESHOLDS = np.arange(0, 4, 0.001)  # finer sweep for VAL@FAR
FAR_TARGET = 1e-3
ACC_THRESHOLDS.flags.writeable = False
VAL_THRESHOLDS.flags.writeable = False


@dataclass
class VerificationResult:
    accuracy: float  # mean held-out fold accuracy
    std: float  # population std of the fold accuracies (insightface's "+-")
    fold_accuracies: list[float]
    best_thresholds: list[float]  # per fold, chosen on the other folds
    n_pairs: int
    val: float  # mean true-accept rate at the threshold giving FAR_TARGET on the train folds
    val_std: float
    far: float  # mean false-accept rate that threshold gives on the held-out folds

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values; a NaN VAL/FAR (a fold lacking a kind of pair) -> null."""
        return {k: None if v != v else v for k, v in asdict(self).items()}  # v != v: NaN

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerificationResult:
        """Inverse of :meth:`to_json`; other keys (``model``, ``benchmark``, ...) are ignored."""
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        return cls(**{k: float("nan") if v is None else v for k, v in fields.items()})


def write_result_json(
    path: str | Path,
    result: VerificationResult,
    model: str,  # the model's name
    benchmark: str,  # the verification set's name
    provenance: dict[str, Any] | None = None,  # what else identifies the model and the set
) -> None:
    """Write the result atomically as sorted, 2-space-indented JSON (same result, same bytes)."""
    data = {"model": model, "benchmark": benchmark, **(provenance or {}), **result.to_json()}
    text = json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- embeddings


def _raw_embeddings(embed: EmbedFn, x: torch.Tensor) -> np.ndarray:
    y = embed(x)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"embed returned shape {tuple(y.shape)}, expected [{x.shape[0]}, D]")
    return y.detach().float().cpu().numpy()


def flip_fused_embeddings(
    images: Sequence[np.ndarray] | np.ndarray,
    embed: EmbedFn,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """normalize(embed(x) + embed(hflip(x))) per HxWx3 uint8 RGB image -> [N, D] float32.

    ``embed`` gets ``(x/255 - 0.5)/0.5`` and must already be in eval mode. insightface slices
    each batch as ``data[bb - batch_size : bb]`` and keeps its last rows, so it re-embeds a full
    batch at the end and breaks when N < batch_size; here the last batch is just shorter.
    """
    n = len(images)
    if n == 0 or batch_size < 1:
        raise ValueError(f"need at least one image and batch_size >= 1, got {n}, {batch_size}")
    shape = None
    out = None
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            imgs = [np.asarray(images[i]) for i in range(start, stop)]
            shape = shape or imgs[0].shape
            for i, img in enumerate(imgs, start):
                if img.dtype != np.uint8 or img.shape != shape or shape[-1:] != (3,):
                    raise ValueError(
                        f"image {i}: expected uint8 HxWx3 like image 0 {shape}, "
                        f"got {img.dtype} {img.shape}"
                    )
            batch = np.stack(imgs)
            x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)
            x = (x / 255 - 0.5) / 0.5  # uint8 / 255 -> float32
            raw = _raw_embeddings(embed, x) + _raw_embeddings(embed, torch.flip(x, dims=[3]))
            if out is None:
                out = np.empty((n, raw.shape[1]), dtype=np.float32)
            out[start:stop] = raw
            if progress is not None:
                progress(stop)
    return normalize(out).astype(np.float32, copy=False)


# ---------------------------------------------------------------- metric


def squared_distances(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """Row-wise squared L2 distance of unit embeddings, float32 as insightface computes it."""
    e1 = np.asarray(emb1, dtype=np.float32)
    e2 = np.asarray(emb2, dtype=np.float32)
    if e1.ndim != 2 or e1.shape != e2.shape:
        raise ValueError(f"embeddings must be two [N, D] arrays, got {e1.shape} and {e2.shape}")
    for e in (e1, e2):
        if not np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-3):
            raise ValueError("embeddings must be L2-normalised (use flip_fused_embeddings)")
    return np.sum(np.square(e1 - e2), axis=1)


def calculate_accuracy(threshold: float, dist: np.ndarray, issame: np.ndarray) -> float:
    """Fraction of pairs classified right when "same" means ``dist < threshold``."""
    predict = np.asarray(dist, dtype=np.float64) < float(threshold)
    return float(np.count_nonzero(predict == np.asarray(issame, dtype=bool)) / predict.size)


def _accept_counts(
    thresholds: np.ndarray, dist: np.ndarray, issame: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(true accepts, false accepts) per threshold: counts of ``dist < t``, by binary search."""
    d = np.asarray(dist, dtype=np.float64)
    tp = np.searchsorted(np.sort(d[issame]), thresholds, side="left")
    fp = np.searchsorted(np.sort(d[~issame]), thresholds, side="left")
    return tp, fp


def accuracy_sweep(thresholds: np.ndarray, dist: np.ndarray, issame: np.ndarray) -> np.ndarray:
    """``calculate_accuracy`` at every threshold at once (same integer counts, same floats)."""
    tp, fp = _accept_counts(thresholds, dist, issame)
    n_diff = int(np.count_nonzero(~issame))
    return (tp + (n_diff - fp)) / dist.size


def _val_far(threshold: float, dist: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    accept = np.asarray(dist, dtype=np.float64) < threshold
    n_same, n_diff = int(issame.sum()), int((~issame).sum())
    val = np.count_nonzero(accept & issame) / n_same if n_same else float("nan")
    far = np.count_nonzero(accept & ~issame) / n_diff if n_diff else float("nan")
    return float(val), float(far)


def threshold_at_far(far: np.ndarray, thresholds: np.ndarray, target: float) -> float:
    """The threshold where the (non-decreasing) FAR curve reaches ``target``; 0 if it never does.

    insightface uses ``interp1d(far, thresholds, kind="slinear")(target)``. FAR is a step function
    of the threshold, so ``far`` repeats values, which SciPy >= 1.9 rejects ("Expect x to not have
    duplicates"). Earlier SciPy built a degree-1 B-spline with the FARs (stably sorted) as knots,
    which evaluates to the line from the LAST threshold with FAR <= target to the FIRST one with
    FAR > target; that is computed here. If no FAR exceeds the target (max FAR == target) that
    spline divided 0/0; we take the last threshold with FAR <= target.
    """
    if far.max() < target:
        return 0.0
    lo = int(np.searchsorted(far, target, side="right")) - 1
    if lo < 0:
        raise ValueError(f"FAR at the first threshold ({far[0]}) is above the target {target}")
    if lo + 1 == far.size:
        return float(thresholds[lo])
    f0, f1, t0, t1 = far[lo], far[lo + 1], thresholds[lo], thresholds[lo + 1]
    return float(t0 + (target - f0) * (t1 - t0) / (f1 - f0))


def verification_roc(
    emb1: np.ndarray,
    emb2: np.ndarray,
    issame: np.ndarray | Sequence[bool],
    n_folds: int = 10,
    thresholds: np.ndarray = ACC_THRESHOLDS,
    far_target: float = FAR_TARGET,
    val_thresholds: np.ndarray = VAL_THRESHOLDS,
) -> VerificationResult:
    """Cross-validated accuracy and VAL@FAR of pairs ``(emb1[i], emb2[i])`` (unit vectors)."""
    dist = squared_distances(emb1, emb2)
    same = np.asarray(issame, dtype=bool)
    if same.shape != dist.shape or dist.size < n_folds:
        raise ValueError(f"{same.shape} labels for {dist.size} pairs in {n_folds} folds")
    accs, best, vals, fars = [], [], [], []
    for train, test in KFold(n_splits=n_folds, shuffle=False).split(dist):
        k = int(np.argmax(accuracy_sweep(thresholds, dist[train], same[train])))  # first max
        best.append(float(thresholds[k]))
        accs.append(calculate_accuracy(thresholds[k], dist[test], same[test]))
        n_diff = int(np.count_nonzero(~same[train]))
        val, far = float("nan"), float("nan")  # unless the train folds give a FAR curve
        if n_diff:
            far_train = _accept_counts(val_thresholds, dist[train], same[train])[1] / n_diff
            thr = threshold_at_far(far_train, val_thresholds, far_target)
            val, far = _val_far(thr, dist[test], same[test])
        vals.append(val)
        fars.append(far)
    return VerificationResult(
        accuracy=float(np.mean(accs)),
        std=float(np.std(accs)),
        fold_accuracies=accs,
        best_thresholds=best,
        n_pairs=int(dist.size),
        val=float(np.mean(vals)),
        val_std=float(np.std(vals)),
        far=float(np.mean(fars)),
    )


# ---------------------------------------------------------------- datasets


def evaluate_bin(
    path: str | Path,
    embed: EmbedFn,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
) -> VerificationResult:
    """The protocol on an insightface ``.bin`` set (images ``2i``, ``2i+1`` are pair ``i``)."""
    data = read_bin(path)
    if len(data) < 10:
        raise UserError(f"{path}: {len(data)} pairs; the 10-fold protocol needs at least 10")
    (h0, w0), first = data.images[0].shape[:2], data.images[0].shape
    for i, img in enumerate(data.images):
        if img.shape != first:
            raise UserError(
                f"{path}: image {i} is {img.shape[1]}x{img.shape[0]} but image 0 is {w0}x{h0}; "
                "all images must be the same size (resizing is the model's concern)"
            )
    emb = flip_fused_embeddings(data.images, embed, batch_size, device, progress)
    return verification_roc(emb[0::2], emb[1::2], data.issame)


class _ImageFiles(Sequence[np.ndarray]):
    """Images decoded on access (RGB via Pillow), so a whole LFW tree never sits in memory."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self._first: tuple[Path, tuple[int, ...]] | None = None  # path and shape

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]  (no slices)
        path = self.paths[i]
        img = decode_image(path.read_bytes(), str(path))
        if self._first is None:
            self._first = (path, img.shape)
        first_path, first_shape = self._first
        if img.shape != first_shape:
            raise UserError(
                f"{path}: image is {img.shape[1]}x{img.shape[0]} but {first_path} is "
                f"{first_shape[1]}x{first_shape[0]}; all images must be the same size "
                "(resizing is the model's concern)"
            )
        return img


def evaluate_lfw_tree(
    root: str | Path,
    pairs_txt: str | Path,
    embed: EmbedFn,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: ProgressFn | None = None,
    n_folds: int = 10,
) -> VerificationResult:
    """The protocol on original LFW: ``pairs.txt`` plus ``<root>/<Name>/<Name>_<NNNN>.jpg``.

    Each distinct image file is embedded once. The folds are the pairs.txt sets: those are equal
    contiguous blocks in file order (10 x 600 in View 2), exactly the blocks KFold cuts, so the
    same code as for ``.bin`` applies; the pairs' set numbers are checked against KFold's split.
    """
    pairs = read_pairs(pairs_txt)
    paths = pair_paths(root, pairs)
    kfold_of = np.empty(len(pairs), dtype=int)
    if len(pairs) >= n_folds:
        for f, (_, test) in enumerate(KFold(n_splits=n_folds, shuffle=False).split(paths)):
            kfold_of[test] = f
    if len(pairs) < n_folds or any(p.fold != f for p, f in zip(pairs, kfold_of)):
        raise UserError(
            f"{pairs_txt}: its {pairs[-1].fold + 1} set(s) of {len(pairs)} pairs are not the {n_folds} "
            "contiguous folds of the protocol"
        )
    unique = list(dict.fromkeys(p for pair in paths for p in pair))
    row = {p: i for i, p in enumerate(unique)}
    emb = flip_fused_embeddings(_ImageFiles(unique), embed, batch_size, device, progress)
    emb1 = emb[[row[a] for a, _ in paths]]
    emb2 = emb[[row[b] for _, b in paths]]
    return verification_roc(emb1, emb2, [p.same for p in pairs], n_folds=n_folds)
