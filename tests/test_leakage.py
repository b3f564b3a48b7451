"""The leakage search: nearest real identity blockwise against a brute-force loop, ties, the
closest pairs with each real identity used once, and the threshold at a FAR."""

import numpy as np
import pytest
import torch

from brownface.errors import UserError
from brownface.leakage.measure import measure_leakage, truth_agreement
from brownface.leakage.search import (
    closest_pairs,
    cosine_threshold_at_far,
    leaked_fraction,
    nearest_real,
)


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


def brute_force(synthetic: torch.Tensor, real: torch.Tensor) -> tuple[list[int], list[float]]:
    """One synthetic row at a time, in float64, first maximum on ties."""
    index, cosine = [], []
    for s in synthetic.double():
        sims = [float(s @ r) for r in real.double()]
        best = max(sims)
        index.append(sims.index(best))
        cosine.append(best)
    return index, cosine


@pytest.mark.parametrize("rows,cols", [(7, 5), (64, 1000), (1, 1)])
def test_nearest_real_matches_the_brute_force_loop_for_any_blocks(rows, cols):
    synthetic, real = unit(53, 16, 0), unit(37, 16, 1)
    found = nearest_real(synthetic, real, rows=rows, cols=cols)
    index, cosine = brute_force(synthetic, real)
    assert found.index.tolist() == index
    assert np.allclose(found.cosine.numpy(), cosine, atol=1e-6)
    assert found.index.dtype == torch.long and found.cosine.shape == (53,)


def test_ties_go_to_the_lowest_real_index_whatever_the_blocks():
    # Values on a 1/8 grid: every dot product is exact in float32, so ties are exact ties.
    g = torch.Generator().manual_seed(2)
    real = torch.randint(-4, 5, (20, 8), generator=g).float() / 8
    real[11] = real[3]  # the same person twice: in another column block (cols=5)...
    real[4] = real[3]  # ...and in the same block
    synthetic = torch.cat([real[3:4], real[11:12], torch.randint(-4, 5, (6, 8), generator=g) / 8])
    index, _ = brute_force(synthetic, real)
    for rows, cols in [(3, 5), (8, 20), (1, 1)]:
        found = nearest_real(synthetic, real, rows=rows, cols=cols)
        assert found.index.tolist() == index
        assert found.index[:2].tolist() == [3, 3]


def test_closest_pairs_use_each_real_identity_once():
    real = unit(6, 8, 3)
    # Synthetic 0 and 2 are both near real 5 (2 closer); synthetic 1 is near real 1.
    noise = unit(4, 8, 4)
    synthetic = torch.stack(
        [real[5] + 0.3 * noise[0], real[1] + 0.2 * noise[1], real[5] + 0.1 * noise[2],
         real[0] + 0.5 * noise[3]]
    )  # fmt: skip
    synthetic = synthetic / synthetic.norm(dim=1, keepdim=True)
    nearest = nearest_real(synthetic, real)
    assert nearest.index.tolist() == [5, 1, 5, 0]
    pairs = closest_pairs(nearest, k=10)
    assert [(s, r) for s, r, _ in pairs] == [(2, 5), (1, 1), (3, 0)]
    assert [c for *_, c in pairs] == sorted((c for *_, c in pairs), reverse=True)
    assert closest_pairs(nearest, k=2) == pairs[:2]

    # Against a brute-force greedy over every pair order.
    cos = nearest.cosine.tolist()
    expected, used = [], set()
    for i in sorted(range(len(cos)), key=lambda i: (-cos[i], i)):
        if nearest.index[i].item() not in used:
            used.add(nearest.index[i].item())
            expected.append(i)
    assert [s for s, _, _ in pairs] == expected


def test_threshold_at_far_is_the_lowest_cosine_that_keeps_the_far():
    scores = np.random.default_rng(5).uniform(-0.3, 0.6, 2000)
    scores[:40] = 0.5  # ties
    for far in (1e-3, 1e-2, 0.02, 0.1, 0.29):
        t = cosine_threshold_at_far(scores, far)
        assert np.mean(scores > t) <= far
        lower = scores[scores < t]
        if lower.size:  # any lower threshold lets more impostors through than the FAR allows
            assert np.mean(scores > lower.max()) > far
    assert cosine_threshold_at_far(np.arange(100) / 100, 0.29) == pytest.approx(0.70)
    assert cosine_threshold_at_far(scores, 1.0) == -1.0
    with pytest.raises(UserError, match="no impostor pairs"):
        cosine_threshold_at_far(np.array([]), 0.1)


def test_leaked_fraction_and_angles():
    real = unit(10, 8, 6)
    synthetic = torch.cat([real[:3], unit(7, 8, 7)])
    nearest = nearest_real(synthetic, real)
    assert torch.allclose(nearest.angles()[:3], torch.zeros(3), atol=1e-3)
    assert leaked_fraction(nearest, 0.999) == pytest.approx(0.3)


def test_shapes_are_checked():
    with pytest.raises(UserError, match=r"expected \[N, D\] and \[M, D\]"):
        nearest_real(unit(3, 8, 0), unit(3, 4, 0))
    with pytest.raises(UserError, match="no real embeddings"):
        nearest_real(unit(3, 8, 0), torch.empty(0, 8))


def test_measure_finds_the_planted_leaks():
    """40 of 200 synthetic identities are real people seen again (small noise); the other 160
    lie in the subspace orthogonal to every real one (at 90 degrees), so exactly the planted
    ones fall below the threshold that random impostor pairs give."""
    real = torch.cat([unit(300, 32, 8), torch.zeros(300, 32)], 1)
    seen_again = real[:40] + 0.05 * torch.cat([unit(40, 32, 9), torch.zeros(40, 32)], 1)
    synthetic = torch.cat([seen_again, torch.cat([torch.zeros(160, 32), unit(160, 32, 10)], 1)])
    synthetic = synthetic / synthetic.norm(dim=1, keepdim=True)
    a, b = unit(5000, 64, 11), unit(5000, 64, 12)
    impostors = (a * b).sum(1).numpy()
    result = measure_leakage(synthetic, real, impostors, k=5,
                             real_names=[f"ffhq/{i:05d}" for i in range(300)])  # fmt: skip
    assert result.leaked == {"0.001": 0.2, "0.0001": 0.2}
    t = result.thresholds["0.001"]
    assert t["cosine"] == cosine_threshold_at_far(impostors, 1e-3) and 20 < t["degrees"] < 90
    assert sum(result.histogram["counts"]) == 200 and len(result.histogram["edges"]) == 91
    assert [p["synthetic"] for p in result.closest] == sorted(
        range(40), key=lambda i: -float(synthetic[i] @ real[i])
    )[:5]
    assert result.closest[0]["real_name"] == f"ffhq/{result.closest[0]['real']:05d}"
    assert result.nearest_degrees["min"] < 5 and result.to_dict()["synthetic"] == 200


def test_truth_agreement():
    called = np.array([1, 1, 0, 0, 1], bool)
    truth = np.array([1, 0, 0, 1, 1], bool)
    assert truth_agreement(called, truth) == {"precision": 2 / 3, "recall": 2 / 3}
    assert truth_agreement(np.zeros(3, bool), np.zeros(3, bool)) == {
        "precision": None, "recall": None
    }  # fmt: skip


def test_measure_with_the_truth_scores_the_fr_call():
    """The planted set again, with a ground truth that marks 40 identities leaked of which the
    FR finds 30 (10 planted leaks are declared clean, 10 clean ones declared leaked)."""
    real = torch.cat([unit(300, 32, 8), torch.zeros(300, 32)], 1)
    seen_again = real[:40] + 0.05 * torch.cat([unit(40, 32, 9), torch.zeros(40, 32)], 1)
    synthetic = torch.cat([seen_again, torch.cat([torch.zeros(160, 32), unit(160, 32, 10)], 1)])
    synthetic = synthetic / synthetic.norm(dim=1, keepdim=True)
    impostors = (unit(5000, 64, 11) * unit(5000, 64, 12)).sum(1).numpy()
    truth = np.zeros(200, bool)
    truth[10:40] = truth[100:110] = True
    result = measure_leakage(synthetic, real, impostors, k=0, truly_leaked=truth)
    assert result.truth == {
        "leaked": 0.2,
        "agreement": {f: {"precision": 0.75, "recall": 0.75} for f in ("0.001", "0.0001")},
    }
    assert result.to_dict()["truth"]["leaked"] == 0.2
    assert "truth" not in measure_leakage(synthetic, real, impostors, k=0).to_dict()
    with pytest.raises(ValueError, match="truly_leaked"):
        measure_leakage(synthetic, real, impostors, truly_leaked=truth[:10])


def test_the_pairs_sheet_shows_each_pair_with_its_angle(tmp_path):
    from PIL import Image

    from brownface.leakage.sheet import FacePair, pairs_sheet

    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(14)]
    pairs = [FacePair(faces[2 * i], faces[2 * i + 1], 10.0 + i, f"{i:06d}", f"{i:03d}/00.png")
             for i in range(7)]  # fmt: skip
    size = pairs_sheet(pairs, tmp_path / "a.png", tile=32, title="t")
    assert size == pairs_sheet(pairs, tmp_path / "b.png", tile=32, title="t")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == size == (5 * 64 + 6 * 8, 22 + 2 * (32 + 34) + 3 * 8)
        sheet = np.asarray(im.convert("RGB"))
    # The first pair: synthetic at the left, real at the right, both resized to the tile.
    left = np.asarray(Image.fromarray(faces[0]).resize((32, 32), Image.Resampling.LANCZOS))
    right = np.asarray(Image.fromarray(faces[1]).resize((32, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(sheet[30:62, 8:40], left) and np.array_equal(sheet[30:62, 40:72], right)
    empty = pairs_sheet([], tmp_path / "none.png", tile=32)
    assert empty[0] > 0 and (tmp_path / "none.png").stat().st_size > 0
