"""IJB scoring: 1:1 (the standard protocol) and 1:N on planted examples computed by hand."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from brownface.errors import UserError
from brownface.evaluate.ijb import has_identification, read_identification, write_template_subjects
from brownface.evaluate.ijb_score import (
    IJBSwitches,
    TemplateFeatures,
    identification,
    image_features,
    pair_scores,
    roc_points,
    tar_at_far,
    template_features,
)

# Six images of three templates: template 1 has a media of two images and one of one,
# template 2 a single image, template 3 two single-image media. (original, flipped) features.
RAW = np.array(
    [
        [[1, 0], [1, 0]],  # a: t1 m10, score 0.5
        [[0, 1], [0, 1]],  # b: t1 m10, score 0.5
        [[1, 1], [0, 0]],  # c: t1 m11, score 1
        [[3, 0], [1, 0]],  # d: t2 m20, score 0.25
        [[0, 2], [0, 2]],  # e: t3 m30, score 1
        [[2, 0], [2, 0]],  # f: t3 m31, score 0.5
    ],
    dtype=np.float32,
)
SCORES = np.array([0.5, 0.5, 1, 0.25, 1, 0.5], dtype=np.float32)
TEMPLATES = np.array([1, 1, 1, 2, 3, 3])
MEDIA = np.array([10, 10, 11, 20, 30, 31])


def _scores(switches: IJBSwitches) -> np.ndarray:
    feats = image_features(RAW, SCORES, switches)
    tmpl = template_features(feats, TEMPLATES, MEDIA)
    return pair_scores(tmpl, np.array([1, 1, 2, 1]), np.array([2, 3, 3, 2]), block=2)


def test_template_scores_by_hand():
    # a+flip = [2, 0] x 0.5 = [1, 0]; b -> [0, 1]; media 10 = mean [0.5, 0.5]; c -> [1, 1];
    # t1 = [1.5, 1.5] -> [1, 1]/sqrt 2. d -> [4, 0] x 0.25 -> t2 = [1, 0].
    # e -> [0, 4]; f -> [4, 0] x 0.5 = [2, 0]; t3 = [2, 4] -> [1, 2]/sqrt 5.
    expected = [1 / math.sqrt(2), 3 / math.sqrt(10), 1 / math.sqrt(5), 1 / math.sqrt(2)]
    np.testing.assert_allclose(_scores(IJBSwitches()), expected, rtol=1e-6)
    # Without detector scores t3 = [4, 4]: the (2, 3) pair scores 1/sqrt 2.
    no_det = _scores(IJBSwitches(use_detector_score=False))
    np.testing.assert_allclose(no_det[2], 1 / math.sqrt(2), rtol=1e-6)
    # Per-image normalisation (norm score off): f and e weigh by detector score only:
    # e -> [0, 1], f -> [0.5, 0]; t3 = [0.5, 1] -> (2, 3) = 0.5 / sqrt(1.25).
    normed = _scores(IJBSwitches(use_norm_score=False))
    np.testing.assert_allclose(normed[2], 0.5 / math.sqrt(1.25), rtol=1e-6)
    # Without the flip, d = [3, 0]: t2 is unchanged in direction, so (1, 2) stays 1/sqrt 2.
    np.testing.assert_allclose(_scores(IJBSwitches(use_flip=False))[0], 1 / math.sqrt(2), rtol=1e-6)


def test_unknown_templates_and_one_label_are_one_line():
    tmpl = template_features(image_features(RAW, SCORES), TEMPLATES, MEDIA)
    with pytest.raises(UserError, match="template 7 has no images"):
        pair_scores(tmpl, np.array([1, 7]), np.array([2, 3]))
    with pytest.raises(UserError, match="genuine and impostor"):
        tar_at_far(np.ones(3), np.array([0.1, 0.2, 0.3]))


def _insightface_rule(labels, scores, far):
    """The reference's lookup, restated: flip the ROC arrays, then min over (|fpr - far|, i)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    _, i = min(zip(np.abs(fpr - far), range(len(fpr))))
    return tpr[i]


def test_tar_at_far_closest_point_with_ties():
    # 4 genuine, 4 impostor pairs: the ROC has fpr steps of 0.25.
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.5, 0.2, 0.85, 0.6, 0.4, 0.1])
    table = tar_at_far(labels, scores, fars=(0.125, 0.25, 0.3, 1e-6))
    # FAR 0.125 is halfway between fpr 0 (tpr 0.25) and 0.25 (tpr 0.5): the tie goes up.
    assert table[0.125] == 0.5
    assert table[0.25] == 0.5 and table[0.3] == 0.5 and table[1e-6] == 0.25
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(labels, 1.0), 1)  # many tied scores
    fars = (1e-3, 1e-2, 0.05, 0.1, 0.5)
    table = tar_at_far(labels, scores, fars)
    for far in fars:
        assert table[far] == _insightface_rule(labels, scores, far)


# ---------------------------------------------------------------------------------------------
# 1:N identification on a planted gallery.


def _unit(*rows):
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_identification_ranks_and_tpir_by_hand():
    # Gallery templates 10, 20, 30 (subjects 1, 2, 3) on the axes; 4 probes of known angles.
    feats = _unit(
        [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0.1, 0], [0.3, 1, 0.2], [1, 0.5, 0.9], [0.5, 0.4, 0.3]
    )
    tmpl = TemplateFeatures(np.array([10, 20, 30, 41, 42, 43, 44]), feats)
    gallery, subjects = np.array([10, 20, 30]), np.array([1, 2, 3])
    probes, probe_subjects = np.array([41, 42, 43, 44]), np.array([1, 2, 3, 3])
    result = identification(tmpl, gallery, subjects, probes, probe_subjects, fpirs=(0.25, 0.5))
    # Mate ranks: 41 -> 1, 42 -> 1, 43 (0.9 < 1.0 on subject 1) -> 2, 44 (0.3 lowest) -> 3.
    assert result.ranks == {1: 0.5, 5: 1.0, 10: 1.0}
    sims = feats[3:] @ feats[:3].T
    mates = sims[np.arange(4), [0, 1, 2, 2]]
    nonmates = np.sort(np.delete(sims.ravel(), [0, 4, 8, 11]))[::-1]
    # FPIR 0.25: ceil(4 x 0.25) = 1st largest non-mate; 0.5: the 2nd.
    for fpir, k in ((0.25, 1), (0.5, 2)):
        assert result.tpir_at_fpir[fpir] == pytest.approx(np.mean(mates > nonmates[k - 1]))
    assert result.n_probes == 4 and result.n_gallery == 3
    # Blocks of one probe give the same numbers.
    again = identification(
        tmpl, gallery, subjects, probes, probe_subjects, fpirs=(0.25, 0.5), block=1
    )
    assert again == result


def test_identification_ties_go_to_gallery_order():
    feats = _unit([1, 0], [1, 0], [1, 0])  # two gallery templates score the probe alike
    tmpl = TemplateFeatures(np.array([1, 2, 3]), feats)
    first = identification(
        tmpl, np.array([1, 2]), np.array([5, 6]), np.array([3]), np.array([5]), fpirs=(1.0,)
    )
    second = identification(
        tmpl, np.array([1, 2]), np.array([5, 6]), np.array([3]), np.array([6]), fpirs=(1.0,)
    )
    assert first.ranks[1] == 1.0 and second.ranks[1] == 0.0 and second.ranks[5] == 1.0


def test_identification_lists_in_nist_csvs(tmp_path):
    meta = tmp_path / "meta"
    write_template_subjects(
        meta / "ijbc_1N_gallery_G1.csv", [1, 1, 2], [7, 7, 8], ["a.jpg", "b.jpg", "c.jpg"]
    )
    write_template_subjects(meta / "ijbc_1N_gallery_G2.csv", [3], [9], ["d.jpg"])
    write_template_subjects(meta / "ijbc_1N_probe_mixed.csv", [4, 5], [7, 9], ["e.jpg", "f.jpg"])
    assert has_identification(tmp_path) and not has_identification(tmp_path, "ijbb")
    lists = read_identification(tmp_path)
    assert lists.gallery_templates.tolist() == [1, 2, 3]  # one entry per template
    assert lists.gallery_subjects.tolist() == [7, 8, 9]
    assert lists.probe_templates.tolist() == [4, 5]
    # A second gallery template of subject 7 (in the other part) is one clear error.
    write_template_subjects(meta / "ijbc_1N_gallery_G2.csv", [3, 6], [9, 7], ["d.jpg", "g.jpg"])
    with pytest.raises(UserError, match=r"subject 7 has gallery templates \[1, 6\]"):
        read_identification(tmp_path)
    write_template_subjects(meta / "ijbc_1N_gallery_G2.csv", [3, 3], [9, 7], ["d.jpg", "g.jpg"])
    with pytest.raises(UserError, match=r"G2.csv: template 3 is listed with subjects \[7, 9\]"):
        read_identification(tmp_path)


def test_roc_points_are_a_log_spaced_step_function():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 20000)
    scores = rng.normal(labels * 2.0, 1.0)
    table = roc_points(labels, scores, n_points=300)
    assert list(table.columns) == ["far", "tar", "threshold"]
    assert (np.diff(table["far"]) > 0).all() and (np.diff(table["tar"]) >= 0).all()
    assert table["far"].iloc[-1] == 1.0 and len(table) <= 300
    fpr, tpr, _ = roc_curve(labels, scores)
    for far, tar in zip(table["far"], table["tar"]):
        assert tar == tpr[fpr <= far].max()
