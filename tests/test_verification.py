"""Face-verification protocol: flip fusion, 10-fold threshold choice, VAL@FAR, .bin and LFW."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.interpolate import BSpline

from brownface.errors import UserError
from brownface.evaluate.binfile import write_bin
from brownface.evaluate.lfw import image_relpath, write_pairs
from brownface.evaluate.verification import (
    ACC_THRESHOLDS,
    VAL_THRESHOLDS,
    VerificationResult,
    accuracy_sweep,
    calculate_accuracy,
    evaluate_bin,
    evaluate_lfw_tree,
    flip_fused_embeddings,
    threshold_at_far,
    verification_roc,
    write_result_json,
)

# ---------------------------------------------------------------- helpers


def _unit_pairs(dists: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """2-D unit vectors whose squared distance is ``d`` (angle with cos = 1 - d/2)."""
    theta = np.arccos(1 - np.asarray(dists) / 2)
    emb1 = np.tile([1.0, 0.0], (len(dists), 1))
    emb2 = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return emb1.astype(np.float32), emb2.astype(np.float32)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, quality=95)
    return buf.getvalue()


# Colours whose [-1, 1] versions point to the 8 cube corners: pairwise cos <= 1/3.
CORNERS = [np.array(c, dtype=np.uint8) * 255 for c in np.ndindex(2, 2, 2)]


def _solid(colour: np.ndarray, rng: np.random.Generator, size=(12, 14)) -> np.ndarray:
    noise = rng.integers(0, 12, size=(*size, 3))
    return np.clip(colour.astype(int) + np.where(colour > 0, -noise, noise), 0, 255).astype(
        np.uint8
    )


def mean_colour(x: torch.Tensor) -> torch.Tensor:
    """A 'colour identity' embedding: mean of each channel (flip-invariant)."""
    return x.mean(dim=(2, 3))


class LinearEmbed:
    """A fixed linear map of the flattened image; counts the images it sees."""

    def __init__(self, shape: tuple[int, int, int], dim: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(int(np.prod(shape)), dim, generator=g, dtype=torch.float64)
        self.seen = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return (x.flatten(1).double() @ self.w).float()


# ---------------------------------------------------------------- metric


def test_planted_folds_give_hand_computed_accuracy_std_and_thresholds() -> None:
    # Fold k holds pair 2k (same) and 2k+1 (different); the values sit between grid points.
    folds = [(0.9055, 1.5055), (0.5055, 1.1055), (0.2055, 1.5055)]
    folds += [(0.5055, 1.5055)] * 6 + [(1.8055, 0.3055)]
    dists = [d for fold in folds for d in fold]
    issame = np.tile([True, False], 10)
    result = verification_roc(*_unit_pairs(dists), issame)
    # Held-out fold 0: the train folds separate on (0.5055, 1.1055] (16 of 18 right; fold 9 is
    # always wrong there), first grid point 0.51; fold 0's same pair (0.9055) is then rejected.
    # Any other fold held out: the train window is (0.9055, 1.1055] or (0.9055, 1.5055] -> 0.91;
    # folds 1..8 are then right, fold 9 (same far, different close) is wrong twice.
    assert result.fold_accuracies == [0.5] + [1.0] * 8 + [0.0]
    assert result.best_thresholds == [ACC_THRESHOLDS[51]] + [ACC_THRESHOLDS[91]] * 9
    assert result.best_thresholds[:2] == pytest.approx([0.51, 0.91])
    assert result.accuracy == pytest.approx(0.85, abs=1e-15)  # (0.5 + 8 + 0) / 10
    # deviations -0.35, 8 x +0.15, -0.85 -> variance (0.1225 + 0.18 + 0.7225) / 10 = 0.1025
    assert result.std == pytest.approx(np.sqrt(0.1025), abs=1e-15)
    assert result.n_pairs == 20
    # VAL@FAR=1e-3: with fold 9 in training its different pair (0.3055) is the closest one, so
    # FAR goes 0 -> 1/9 between 0.305 and 0.306 and the threshold is 0.305 + 9e-6: only fold 2's
    # same pair (0.2055) is accepted. Fold 9 held out: threshold 1.105 + 9e-6 accepts its
    # different pair (FAR 1) and rejects its same pair.
    assert result.val == pytest.approx(0.1)
    assert result.val_std == pytest.approx(0.3)
    assert result.far == pytest.approx(0.1)


def test_separable_pairs_score_one_and_random_pairs_score_about_half() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(600, 32))
    other = rng.normal(size=(600, 32))
    issame = rng.random(600) < 0.5
    second = np.where(issame[:, None], base + 0.01 * rng.normal(size=base.shape), other)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    result = verification_roc(unit(base), unit(second), issame)
    assert (result.accuracy, result.std) == (1.0, 0.0)
    # the FAR threshold is interpolated past the closest train 'different' pair: FAR ~ 1e-3
    assert result.val == 1.0 and result.far < 0.01

    n = 2000
    issame = rng.random(n) < 0.5
    noise = verification_roc(unit(rng.normal(size=(n, 32))), unit(rng.normal(size=(n, 32))), issame)
    assert abs(noise.accuracy - 0.5) < 0.05


def test_accuracy_sweep_matches_the_one_threshold_reference() -> None:
    rng = np.random.default_rng(2)
    dist = rng.uniform(0, 4, 500).astype(np.float32)
    dist[:50] = np.float32(1.0)  # ties exactly on a grid point
    issame = rng.random(500) < 0.5
    ref = [calculate_accuracy(t, dist, issame) for t in ACC_THRESHOLDS]
    assert accuracy_sweep(ACC_THRESHOLDS, dist, issame).tolist() == ref


def test_threshold_at_far_matches_pre_1_9_scipy_slinear() -> None:
    # Before SciPy 1.9, interp1d(far, thr, kind="slinear") built this k=1 B-spline (repeated
    # knots allowed); insightface's VAL numbers come from it.
    rng = np.random.default_rng(3)
    for _ in range(20):
        dist, diff = rng.uniform(0, 4, 200), rng.random(200) < 0.5
        far = np.array([np.mean(dist[diff] < t) for t in VAL_THRESHOLDS])
        spline = BSpline(np.r_[far[0], far, far[-1]], VAL_THRESHOLDS, 1)
        for target in (1e-3, 0.1, far[1500], 0.9):
            assert threshold_at_far(far, VAL_THRESHOLDS, target) == pytest.approx(
                float(spline(target)), abs=1e-12
            )
    far = np.array([0.0, 0.0, 0.25, 0.25, 0.5])
    thr = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert threshold_at_far(far, thr, 0.125) == 1.5  # last 0 (1.0) -> first 0.25 (2.0)
    assert threshold_at_far(far, thr, 0.25) == 3.0  # exactly hit: last threshold with it
    assert threshold_at_far(far, thr, 0.5) == 4.0
    assert threshold_at_far(far, thr, 0.75) == 0.0  # never reached: insightface uses 0


def test_raw_embeddings_are_refused() -> None:
    with pytest.raises(ValueError, match="L2-normalised"):
        verification_roc(np.ones((20, 4)), np.ones((20, 4)), np.ones(20, bool))


# ---------------------------------------------------------------- flip fusion


@pytest.mark.parametrize(("n", "batch_size"), [(10, 4), (5, 64), (8, 8)])
def test_flip_fusion_sums_raw_embeddings_then_normalises(n: int, batch_size: int) -> None:
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(n, 6, 5, 3), dtype=np.uint8)
    embed = LinearEmbed((3, 6, 5))
    done: list[int] = []
    fused = flip_fused_embeddings(images, embed, batch_size=batch_size, progress=done.append)

    x = (images.astype(np.float64) / 255 - 0.5) / 0.5
    w = embed.w.numpy()
    raw = x.transpose(0, 3, 1, 2).reshape(n, -1) @ w
    raw += x[:, :, ::-1].transpose(0, 3, 1, 2).reshape(n, -1) @ w  # mirrored left-right
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert fused.dtype == np.float32 and fused.shape == (n, 8)
    np.testing.assert_allclose(fused, expected, atol=1e-5)
    assert embed.seen == 2 * n
    assert done == [*range(batch_size, n, batch_size), n]


def test_flip_fusion_refuses_mixed_sizes() -> None:
    images = [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)]
    with pytest.raises(ValueError, match="image 1"):
        flip_fused_embeddings(images, mean_colour)


# ---------------------------------------------------------------- datasets


def _colour_pairs(seed: int = 5):
    """10 folds x (1 same, 1 different) pairs of LFW-named images, in pairs.txt order."""
    rng = np.random.default_rng(seed)
    folds, pixels = [], {}
    for k in range(10):
        a, b, c = f"Person_{k}", f"Person_{k}b", f"Person_{k}c"
        ca, cb, cc = CORNERS[k % 8], CORNERS[(k + 3) % 8], CORNERS[(k + 5) % 8]
        for name, colour, count in ((a, ca, 2), (b, cb, 1), (c, cc, 1)):
            for i in range(1, count + 1):
                pixels[(name, i)] = _solid(colour, rng)
        folds.append(([(a, 1, 2)], [(b, 1, c, 1)]))
    return folds, pixels


def _write_tree_and_bin(tmp_path: Path):
    folds, pixels = _colour_pairs()
    encoded = {key: _encode(px, "JPEG") for key, px in pixels.items()}
    root = tmp_path / "lfw"
    for (name, i), data in encoded.items():
        path = root / image_relpath(name, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    write_pairs(tmp_path / "pairs.txt", folds)
    images, issame = [], []
    for matched, mismatched in folds:
        for name, i1, i2 in matched:
            images += [encoded[(name, i1)], encoded[(name, i2)]]
            issame.append(True)
        for n1, i1, n2, i2 in mismatched:
            images += [encoded[(n1, i1)], encoded[(n2, i2)]]
            issame.append(False)
    write_bin(tmp_path / "set.bin", images, issame)
    return root, tmp_path / "pairs.txt", tmp_path / "set.bin", len(encoded)


def test_evaluate_bin_separates_colour_identities(tmp_path: Path) -> None:
    _, _, bin_path, _ = _write_tree_and_bin(tmp_path)
    result = evaluate_bin(bin_path, mean_colour, batch_size=7)
    assert (result.accuracy, result.std, result.n_pairs) == (1.0, 0.0, 20)


def test_lfw_tree_gives_the_same_result_as_the_bin(tmp_path: Path) -> None:
    root, pairs_txt, bin_path, n_files = _write_tree_and_bin(tmp_path)
    embed = LinearEmbed((3, 12, 14), dim=4, seed=6)  # not separable: a non-trivial result
    from_bin = evaluate_bin(bin_path, embed, batch_size=16)
    embed.seen = 0
    from_tree = evaluate_lfw_tree(root, pairs_txt, embed, batch_size=16)
    assert from_tree == from_bin
    assert embed.seen == 2 * n_files  # each distinct file embedded once (x2 for the flip)
    assert evaluate_lfw_tree(root, pairs_txt, mean_colour).accuracy == 1.0


def test_mixed_image_sizes_are_a_user_error(tmp_path: Path) -> None:
    root, pairs_txt, _, _ = _write_tree_and_bin(tmp_path)
    odd = root / image_relpath("Person_3b", 1)
    odd.write_bytes(_encode(np.zeros((10, 10, 3), np.uint8), "JPEG"))
    with pytest.raises(UserError, match="Person_3b_0001.jpg: image is 10x10 but .* is 14x12"):
        evaluate_lfw_tree(root, pairs_txt, mean_colour)
    small, big = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)
    write_bin(tmp_path / "mixed.bin", [_encode(a, "PNG") for a in (small, big)] * 10, [True] * 10)
    with pytest.raises(UserError, match="mixed.bin: image 1 is 9x8 but image 0 is 8x8"):
        evaluate_bin(tmp_path / "mixed.bin", mean_colour)


def test_pairs_sets_must_be_the_kfold_blocks(tmp_path: Path) -> None:
    root, _, _, _ = _write_tree_and_bin(tmp_path)
    folds, _ = _colour_pairs()
    five_sets = [
        (folds[2 * k][0] + folds[2 * k + 1][0], folds[2 * k][1] + folds[2 * k + 1][1])
        for k in range(5)
    ]
    write_pairs(tmp_path / "five.txt", five_sets)
    with pytest.raises(UserError, match="five.txt: its 5 set"):
        evaluate_lfw_tree(root, tmp_path / "five.txt", mean_colour)


# ---------------------------------------------------------------- result JSON


def test_result_json_round_trips_with_deterministic_bytes(tmp_path: Path) -> None:
    result = verification_roc(*_unit_pairs([0.5055, 1.5055] * 10), np.tile([True, False], 10))
    write_result_json(tmp_path / "a.json", result, model="r50", benchmark="lfw")
    write_result_json(tmp_path / "b.json", result, model="r50", benchmark="lfw")
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    data = json.loads(text)
    assert list(data) == sorted(data) and text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert (data["model"], data["benchmark"]) == ("r50", "lfw")
    assert VerificationResult.from_json(data) == result
    assert not list(tmp_path.glob(".*tmp*"))

    nan = VerificationResult(0.5, 0.0, [0.5], [1.0], 2, float("nan"), float("nan"), 0.0)
    write_result_json(tmp_path / "nan.json", nan, model="m", benchmark="d", provenance={"x": 1})
    data = json.loads((tmp_path / "nan.json").read_text())
    assert (
        data["x"] == 1 and data["val"] is None and np.isnan(VerificationResult.from_json(data).val)
    )
