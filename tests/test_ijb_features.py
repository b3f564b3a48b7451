"""IJB feature extraction: the standard alignment, resumable caches, shards that tile."""

import numpy as np
import pytest
import torch
from skimage.transform import SimilarityTransform, warp

from brownface.errors import UserError
from brownface.evaluate.ijb import IJBMeta, write_ijb
from brownface.evaluate.ijb_features import (
    ExtractionParams,
    align_ijb_image,
    extract_features,
    read_features,
)
from brownface.imageio import encode
from brownface.models.align import ARCFACE_TEMPLATE_112
from brownface.sharding import shard_range

N = 11


def _ijb(root):
    """A benchmark of N random 80x96 photos whose landmarks are a rotated, scaled template."""
    rng = np.random.default_rng(0)
    (root / "loose_crop").mkdir(parents=True)
    names, landmarks = [], []
    for k in range(N):
        image = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        (root / "loose_crop" / f"{k + 1}.jpg").write_bytes(encode(image, "png"))
        angle, scale = rng.uniform(-0.4, 0.4), rng.uniform(0.4, 0.7)
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        landmarks.append(ARCFACE_TEMPLATE_112.numpy() @ rot.T + rng.uniform(5, 20, 2))
        names.append(f"{k + 1}.jpg")
    meta = IJBMeta(
        image_names=names,
        template_ids=np.arange(N) // 2 + 1,
        media_ids=np.arange(N) + 1,
        landmarks=np.array(landmarks, np.float32),
        scores=np.full(N, 0.9, np.float32),
        t1=np.array([1, 1]),
        t2=np.array([2, 3]),
        labels=np.array([1, 0]),
    )
    write_ijb(root, meta)
    return meta


class Net(torch.nn.Module):
    """A fixed random projection of the crop; counts the images it embeds (each image twice:
    as it is and mirrored)."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 112 * 112, 8)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))
        torch.nn.init.zeros_(self.proj.bias)
        self.seen, self.fail_after = 0, fail_after

    def forward(self, x):
        if self.fail_after is not None and self.seen >= self.fail_after:
            raise KeyboardInterrupt  # a kill between batches
        self.seen += len(x)
        return self.proj(x.flatten(1))


def test_alignment_is_skimage_similarity_and_bilinear_warp_with_black_border(tmp_path):
    meta = _ijb(tmp_path)
    image = np.random.default_rng(3).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    points = meta.landmarks[0] - 12  # near the top-left corner: the crop leaves the photo
    ours = align_ijb_image(image, points).permute(1, 2, 0).numpy()
    src, dst = points.astype(np.float64), ARCFACE_TEMPLATE_112.numpy().astype(np.float64)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
    else:
        tform = SimilarityTransform()
        tform.estimate(src, dst)
    ref = warp(image, tform.inverse, output_shape=(112, 112), order=1, cval=0, preserve_range=True)
    diff = np.abs(ours.astype(float) - ref)
    assert diff.max() <= 1.0  # rounding only
    # The crop extends past the photo: those pixels are black.
    assert (ref.sum(-1) == 0).any() and (ours[ref.sum(-1) == 0] == 0).all()


def _extract(net, root, meta, out, model="m", **kw):
    """All N images of the benchmark at ``root`` into ``out``."""
    return extract_features(net, root, meta, out, start=0, stop=N, model_sha256=model, **kw)


def test_a_killed_extraction_resumes_to_the_same_bytes(tmp_path):
    root, meta = tmp_path / "ijb", _ijb(tmp_path / "ijb")
    kw = dict(partial=tmp_path / "ckpt" / "b.h5", params=ExtractionParams(batch_size=3))
    whole = _extract(Net(), root, meta, tmp_path / "a.h5", params=kw["params"])
    with pytest.raises(KeyboardInterrupt):
        _extract(Net(fail_after=12), root, meta, tmp_path / "b.h5", **kw)  # killed in batch 3
    assert kw["partial"].exists() and not (tmp_path / "b.h5").exists()
    net = Net()
    _extract(net, root, meta, tmp_path / "b.h5", **kw)
    assert net.seen == 2 * (N - 6)  # only the rest was embedded
    assert not kw["partial"].exists()
    np.testing.assert_array_equal(read_features([whole], N), read_features([tmp_path / "b.h5"], N))
    # A partial cache of another model is not resumed.
    with pytest.raises(KeyboardInterrupt):
        _extract(Net(fail_after=3), root, meta, tmp_path / "c.h5", **kw)
    net = Net()
    _extract(net, root, meta, tmp_path / "c.h5", model="other", **kw)
    assert net.seen == 2 * N


def test_shards_tile_the_images_and_give_the_same_bytes(tmp_path):
    meta = _ijb(tmp_path / "ijb")
    params = ExtractionParams(batch_size=2)
    one = _extract(Net(), tmp_path / "ijb", meta, tmp_path / "one.h5", params=params)
    shards = []
    for k in range(3):
        # Ranges start on batch boundaries, so every batch holds the same images as in one job.
        start, stop = shard_range(N, 3, k, align=params.batch_size)
        loader = ExtractionParams(batch_size=2, workers=1 if k == 0 else 0)
        shards.append(
            extract_features(
                Net(),
                tmp_path / "ijb",
                meta,
                tmp_path / f"s{k}.h5",
                start=start,
                stop=stop,
                model_sha256="m",
                params=loader,
            )
        )
    feats = read_features(shards, N)
    assert feats.shape == (N, 2, 8)
    np.testing.assert_array_equal(feats, read_features([one], N))
    with pytest.raises(UserError, match="complete and in order"):
        read_features([shards[0], shards[2]], N)
    with pytest.raises(UserError, match="cover"):
        read_features(shards[:2], N)


def test_a_missing_image_is_one_line(tmp_path):
    meta = _ijb(tmp_path / "ijb")
    (tmp_path / "ijb" / "loose_crop" / "4.jpg").unlink()
    with pytest.raises(UserError, match=r"4.jpg: IJB image listed in the meta files is missing"):
        _extract(Net(), tmp_path / "ijb", meta, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
