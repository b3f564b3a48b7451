"""Landmark detection of real photographs (dlib), the detect_landmarks and merge_landmarks stages."""

import filecmp
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data

from brownface.covariates.align import five_points
from brownface.covariates.detect import (
    LandmarkDetector,
    default_predictor,
    read_points68,
    read_report,
)
from brownface.covariates.landmarks import read_landmarks
from brownface.covariates.stages import detect_landmarks, merge_landmarks
from brownface.errors import UserError
from brownface.world.multipie_set import MultiPieSpec, build_multipie


@pytest.fixture(scope="module")
def detector() -> LandmarkDetector:
    return LandmarkDetector()


def test_the_predictor_is_found_without_importing_its_package():
    path = default_predictor()
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 9e7
    assert "face_recognition_models" not in sys.modules  # its __init__ needs pkg_resources


def test_a_real_photograph(detector):
    """scikit-image's astronaut (Eileen Collins, NASA, public domain): the whole picture has
    a second face-like patch, so it is skipped; her face alone gives 68 points."""
    photo = data.astronaut()
    points, problem = detector.detect(photo)
    assert points is None and problem == "2 faces found"
    face = photo[50:200, 130:310]
    points, problem = detector.detect(np.ascontiguousarray(face))
    assert problem is None and points.shape == (68, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = five_points(points)
    assert 25 < right_eye[0] - left_eye[0] < 60 and abs(right_eye[1] - left_eye[1]) < 10
    assert left_eye[1] < nose[1] < mouth_left[1] and mouth_left[0] < mouth_right[0]
    assert left_eye[0] < nose[0] < right_eye[0]
    blank, problem = detector.detect(np.full((120, 120, 3), 128, np.uint8))
    assert blank is None and problem == "no face found"


def _tree(tmp_path, world):
    spec = MultiPieSpec(
        subjects=3, image_size=128, attendance=1.0, cameras=("05_1", "14_0"), flashes=(7, 9)
    )
    build_multipie(world.renderer, 0, tmp_path / "mp", tmp_path / "truth.csv", spec)
    truth = read_landmarks(tmp_path / "truth.csv")
    blank = sorted(truth)[0]  # a photo without a face: reported, never fatal
    Image.new("RGB", (128, 128), (90, 90, 90)).save(tmp_path / "mp" / blank)
    return truth, blank


def test_detected_landmarks_of_a_multipie_tree(tmp_path, world):
    """World photos (faces the test draws) through the stages, in 1 and in 3 shards."""
    truth, blank = _tree(tmp_path, world)
    kw = dict(root=str(tmp_path / "mp"), upsample=1, predictor=None)
    outputs = {}
    for shards in (1, 3):
        d = tmp_path / f"s{shards}"
        d.mkdir()
        for k in range(shards):
            detect_landmarks(points=str(d / f"p{k}.csv"), report=str(d / f"r{k}.csv"),
                             shard=k, shards=shards, **kw)  # fmt: skip
        merge_landmarks(
            points=[str(d / f"p{k}.csv") for k in range(shards)],
            reports=[str(d / f"r{k}.csv") for k in range(shards)],
            landmarks=str(d / "landmarks.csv"),
            landmarks68=str(d / "landmarks68.csv"),
            report=str(d / "skipped.csv"),
        )
        outputs[shards] = d
    for name in ("landmarks.csv", "landmarks68.csv", "skipped.csv"):
        assert filecmp.cmp(outputs[1] / name, outputs[3] / name, shallow=False), name
    found = read_landmarks(outputs[1] / "landmarks.csv")
    skipped = read_report(outputs[1] / "skipped.csv")
    assert skipped[blank] == "no face found"
    assert set(found) | set(skipped) == set(truth) and not set(found) & set(skipped)
    frontal = [rel for rel in truth if "/05_1/" in rel and rel != blank]
    assert all(rel in found for rel in frontal)  # every frontal face is found
    errors = [np.abs(found[rel] - truth[rel]).max() for rel in found]
    assert np.median(errors) < 4.0 and max(errors) < 10.0  # pixels at 128 px
    points68 = read_points68(outputs[1] / "landmarks68.csv")
    assert set(points68) == set(found)
    np.testing.assert_allclose(five_points(points68[frontal[0]]), found[frontal[0]], atol=1e-3)


def test_bad_detection_inputs_are_one_line(tmp_path):
    with pytest.raises(UserError, match="dlib shape predictor file not found"):
        LandmarkDetector(tmp_path / "missing.dat")
    (tmp_path / "x.csv").write_text("path,a\n")
    with pytest.raises(UserError, match="not a 68-point landmark file"):
        read_points68(tmp_path / "x.csv")
