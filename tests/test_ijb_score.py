"""IJB 1:1 scoring: the standard protocol on a planted example computed by hand."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from brownface.errors import UserError
from brownface.evaluate.ijb_score import (
    IJBSwitches,
    image_features,
    pair_scores,
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
