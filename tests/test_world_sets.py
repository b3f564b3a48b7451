"""The world's data sets re-read, in the real formats, into what was written."""

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from brownface.covariates.landmarks import read_landmarks
from brownface.covariates.multipie import CAMERA_YAW, EXPRESSIONS, parse_relpath
from brownface.evaluate.binfile import read_bin, read_bin_encoded
from brownface.evaluate.ijb import read_ijb
from brownface.evaluate.lfw import image_relpath, read_pairs
from brownface.world.ijb_set import build_ijbc
from brownface.world.multipie_set import MultiPieSpec, build_multipie
from brownface.world.renderer import FaceRenderer
from brownface.world.verification_sets import bin_fold_structure, build_cfp_fp, build_lfw


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer(resolution=64, seed=0)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def multipie(tmp_path_factory, renderer):
    out = tmp_path_factory.mktemp("mp")
    spec = MultiPieSpec(subjects=3, image_size=64, attendance=1.0)
    n = build_multipie(renderer, 0, out / "multipie", out / "landmarks.csv", spec)
    return out, n


def test_multipie_names_parse_and_cover_the_subsets(multipie):
    out, n = multipie
    files = sorted(
        p.relative_to(out / "multipie").as_posix() for p in (out / "multipie").rglob("*.png")
    )
    assert len(files) == n
    images = [parse_relpath(f) for f in files]
    assert {im.subject for im in images} == {1, 2, 3}
    assert {im.expression for im in images} == set(EXPRESSIONS)
    neutral_07 = {im.camera for im in images if im.expression == "neutral" and im.flash == 7}
    assert neutral_07 == set(CAMERA_YAW)
    frontal_flashes = {
        im.flash for im in images if im.camera == "05_1" and im.expression == "neutral"
    }
    assert {0, 1, 2, 3, 7, 11, 12, 13} <= frontal_flashes
    # Expression recordings are photographed by the frontal camera under flash 07 only.
    assert all((im.camera, im.flash) == ("05_1", 7) for im in images if im.expression != "neutral")


def test_multipie_landmarks_cover_every_image_and_faces_are_not_aligned(multipie):
    out, _ = multipie
    landmarks = read_landmarks(out / "landmarks.csv")
    files = {p.relative_to(out / "multipie").as_posix() for p in (out / "multipie").rglob("*.png")}
    assert set(landmarks) == files
    frontal = np.stack([lm for rel, lm in landmarks.items() if "_051_07" in rel])
    eye_distance = np.linalg.norm(frontal[:, 1] - frontal[:, 0], axis=1)
    # Shift, scale and roll differ per session: positions and sizes vary by several pixels.
    assert frontal[:, 0].std(0).max() > 1.0 and eye_distance.std() > 0.5
    tilt = np.degrees(
        np.arctan2(frontal[:, 1, 1] - frontal[:, 0, 1], frontal[:, 1, 0] - frontal[:, 0, 0])
    )
    assert np.abs(tilt).max() > 2.0


def test_multipie_same_seed_same_bytes(tmp_path, renderer, multipie):
    out, _ = multipie
    spec = MultiPieSpec(subjects=3, image_size=64, attendance=1.0)
    build_multipie(renderer, 0, tmp_path / "multipie", tmp_path / "landmarks.csv", spec)
    assert tree_digest(tmp_path / "multipie") == tree_digest(out / "multipie")
    assert (tmp_path / "landmarks.csv").read_bytes() == (out / "landmarks.csv").read_bytes()
    build_multipie(FaceRenderer(64, seed=1), 1, tmp_path / "other", tmp_path / "other.csv", spec)
    assert tree_digest(tmp_path / "other") != tree_digest(out / "multipie")


def test_lfw_bin_tree_and_pairs_agree(tmp_path, renderer):
    build_lfw(
        renderer,
        0,
        tmp_path / "lfw.bin",
        tmp_path / "lfw",
        tmp_path / "pairs.txt",
        pairs_per_fold=3,
    )
    vs = read_bin(tmp_path / "lfw.bin")
    assert len(vs.images) == 120 and vs.images[0].shape == (112, 112, 3)
    assert bin_fold_structure(vs.issame) == [(3, 3)] * 10
    pairs = read_pairs(tmp_path / "pairs.txt")
    assert (tmp_path / "pairs.txt").read_text().startswith("10\t3\n")
    assert [p.same for p in pairs] == vs.issame.tolist()
    encoded = read_bin_encoded(tmp_path / "lfw.bin").images
    for i, p in enumerate(pairs):
        assert (tmp_path / "lfw" / image_relpath(p.name1, p.index1)).read_bytes() == encoded[2 * i]
        assert (tmp_path / "lfw" / image_relpath(p.name2, p.index2)).read_bytes() == encoded[
            2 * i + 1
        ]
    # Folds are person-disjoint.
    people = [
        {p.name1 for p in pairs if p.fold == f} | {p.name2 for p in pairs if p.fold == f}
        for f in range(10)
    ]
    assert all(people[a].isdisjoint(people[b]) for a in range(10) for b in range(a + 1, 10))


def test_cfp_fp_pairs_are_frontal_vs_profile(tmp_path, renderer):
    build_cfp_fp(renderer, 0, tmp_path / "cfp_fp.bin", people_per_fold=2)
    vs = read_bin(tmp_path / "cfp_fp.bin")
    assert len(vs.issame) == 280
    assert bin_fold_structure(vs.issame) == [(14, 14)] * 10
    # The second image of every pair is a profile: its face covers one side of the crop.
    second = np.stack(vs.images[1::2]).astype(float).mean(-1)
    first = np.stack(vs.images[0::2]).astype(float).mean(-1)
    asymmetry = lambda x: np.abs(x[:, :, :56] - x[:, :, 56:][:, :, ::-1]).mean()  # noqa: E731
    assert asymmetry(second) > 1.5 * asymmetry(first)


def test_same_seed_same_bin_bytes(tmp_path, renderer):
    for name in ("a", "b"):
        build_cfp_fp(renderer, 0, tmp_path / f"{name}.bin", people_per_fold=2)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_ijbc_meta_rereads_and_templates_are_well_formed(tmp_path, renderer):
    n = build_ijbc(renderer, 0, tmp_path / "ijbc", subjects=5, image_size=96)
    meta = read_ijb(tmp_path / "ijbc")
    assert len(meta.image_names) == n
    assert all((tmp_path / "ijbc" / "loose_crop" / name).is_file() for name in meta.image_names)
    per_template = Counter(meta.template_ids.tolist())
    assert all(1 <= c <= 6 for c in per_template.values())
    for t in per_template:
        media = set(meta.media_ids[meta.template_ids == t].tolist())
        assert 1 <= len(media) <= 3
    t = len(per_template)
    assert len(meta.labels) == t * (t - 1) // 2
    assert 0 < meta.labels.sum() < len(meta.labels)
    assert ((meta.scores > 0) & (meta.scores <= 1)).all()
    # Loose crops: faces off-centre, so the eye midpoints spread over the image.
    centres = meta.landmarks[:, :2].mean(1)
    assert centres.std(0).min() > 4
