"""Sharded rendering, image formats, the dataset card and the contact sheet."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from brownface import config
from brownface.dataset.layout import read_index
from brownface.dataset.render import RenderSettings, merge_rendered, render_variations
from brownface.dataset.sheet import contact_sheet, sheet_size
from brownface.dataset.stages import write_dataset_card
from brownface.errors import UserError
from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.store import IdentityStore, VariationStore
from brownface.world.generator import WorldGenerator

N, V = 5, 3  # identities, images per identity (the reference and 2 variations)


@pytest.fixture(scope="module")
def gen():
    return WorldGenerator(seed=0)


def make_store(gen, path, n=N, v=V, seed=0):
    z = torch.randn(n * v, 32, generator=torch.Generator().manual_seed(seed))
    w = gen.mapping(z, truncation_psi=0.7).reshape(n, v, 32).numpy()
    e = np.random.default_rng(seed).standard_normal((n, v, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=-1, keepdims=True)
    store = VariationStore(identity=np.arange(n), w=w, embedding=e, provenance={"stage": "t"})
    store.write(path)
    return store


def render_sharded(gen, store, out, shards, settings=None, batch=6):
    roots = [out.parent / f"{out.name}-shard{k:03d}" for k in range(shards)]
    for k, root in enumerate(roots):
        render_variations(gen, store, root, 16, settings, shard=k, shards=shards, batch=batch)
    merge_rendered(roots, out)
    return roots


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("batch", [6, 256])  # 2 identities per batch; all in one batch
def test_one_and_three_shards_give_the_same_bytes(gen, tmp_path, batch):
    make_store(gen, tmp_path / "v.h5")
    render_sharded(gen, tmp_path / "v.h5", tmp_path / "one", 1, batch=batch)
    roots = render_sharded(gen, tmp_path / "v.h5", tmp_path / "three", 3, batch=batch)
    one, three = tree(tmp_path / "one"), tree(tmp_path / "three")
    assert one == three  # index.csv and every image, byte for byte
    images = [f"images/{i:06d}/{v:03d}.png" for i in range(N) for v in range(V)]
    assert sorted(one) == [*images, "index.csv"]
    sizes = [len(read_index(root, allow_empty=True)) for root in roots]
    assert sum(sizes) == N * V and (batch == 256) == (max(sizes) == N * V)  # or empty shards
    # The merge links the shards' files (no image stored twice) and drops render.json.
    first = read_index(tmp_path / "three").paths[0]
    assert (tmp_path / "three" / first).stat().st_nlink > 1
    # A direct, unsharded render writes the same index.
    render_variations(gen, tmp_path / "v.h5", tmp_path / "direct", 16, batch=batch)
    assert (tmp_path / "direct" / "index.csv").read_bytes() == one["index.csv"]


def test_merge_refuses_an_incomplete_or_mixed_split(gen, tmp_path):
    make_store(gen, tmp_path / "v.h5")
    roots = render_sharded(gen, tmp_path / "v.h5", tmp_path / "out", 3)
    with pytest.raises(UserError, match=r"expected shards 0\.\.1 of 2, got 0 of 3, 2 of 3"):
        merge_rendered([roots[0], roots[2]], tmp_path / "bad")
    jpeg = tmp_path / "jpeg-shard"
    render_variations(gen, tmp_path / "v.h5", jpeg, 16, RenderSettings("jpeg"), shard=1, shards=3)
    with pytest.raises(UserError, match="has render {'format': 'jpeg', 'jpeg_quality': 95}"):
        merge_rendered([roots[0], jpeg, roots[2]], tmp_path / "bad")
    shutil.rmtree(roots[1] / "images")
    with pytest.raises(UserError, match="which does not exist"):
        merge_rendered(roots, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_jpeg_images_decode_and_follow_the_quality(gen, tmp_path):
    make_store(gen, tmp_path / "v.h5", n=2)
    digests = []
    for quality in (95, 40):
        out = tmp_path / f"q{quality}"
        render_variations(gen, tmp_path / "v.h5", out, 16, RenderSettings("jpeg", quality))
        index = read_index(out)
        assert index.paths[0] == "images/000000/000.jpg"
        assert all(p.endswith(".jpg") for p in index.paths)
        with Image.open(out / index.paths[0]) as im:
            assert im.format == "JPEG" and im.size == (16, 16)
        digests.append(index.sha256)
    assert digests[0] != digests[1]


def test_bad_render_settings_are_one_line_naming_the_key():
    with pytest.raises(UserError) as err:
        config.validate({"render": {"jpeg_quality": 0}})
    assert str(err.value) == "config: render.jpeg_quality: expected a value >= 1, got 0"
    with pytest.raises(UserError, match="render.format: expected one of 'png', 'jpeg', got 'gif'"):
        config.validate({"render": {"format": "gif"}})
    with pytest.raises(UserError, match="config render.jpeg_quality: expected a value <= 100"):
        RenderSettings("jpeg", 101)
    filled = config.validate({})["render"]
    assert filled == {"format": "png", "jpeg_quality": 95} == RenderSettings().to_dict()


def test_card_describes_the_dataset_deterministically(gen, tmp_path):
    store = make_store(gen, tmp_path / "v.h5")
    IdentityStore(
        identity=store.identity, w=store.w[:, 0], embedding=store.embedding[:, 0],
        provenance={"stage": "identities"},
    ).write(tmp_path / "i.h5")  # fmt: skip
    render_variations(gen, tmp_path / "v.h5", tmp_path / "rendered", 16)
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    ict = 1.4
    kwargs = dict(
        dataset="tiny",
        recipes={
            "identities": {"name": "lang", "recipe": {"algorithm": "langevin", "n": N, "ict": ict}},
            "variations": {"name": "disp", "recipe": {"algorithm": "dispersion", "variations": V - 1}},
        },
        seed=3,
        image_size=16,
        identities=tmp_path / "i.h5",
        variations=tmp_path / "v.h5",
        rendered=tmp_path / "rendered",
    )  # fmt: skip
    specs = (GeneratorSpec(kind="world"), FRSpec(kind="brownface", checkpoint=str(weights)))
    write_dataset_card(*specs, RenderSettings(), out=tmp_path / "card.json", **kwargs)
    write_dataset_card(*specs, RenderSettings(), out=tmp_path / "again.json", **kwargs)
    text = (tmp_path / "card.json").read_text()
    assert text == (tmp_path / "again.json").read_text()
    card = json.loads(text)
    assert list(card) == sorted(card)
    assert card["counts"] == {"identities": N, "images_per_identity": V, "images": N * V}
    assert card["seed"] == 3 and card["recipes"]["identities"]["name"] == "lang"
    assert card["reference_fr"]["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert card["generator"]["kind"] == "world" and "checkpoint_sha256" not in card["generator"]
    assert card["stores"]["identities"]["stage"] == "identities"
    assert card["stores"]["variations"]["stage"] == "t"
    assert card["render"] == {"image_size": 16, "format": "png"}
    assert card["images"]["count"] == N * V and len(card["images"]["fingerprint"]) == 64
    angles = card["angles"]
    assert angles["unit"] == "degrees" and angles["ict"] == round(np.rad2deg(ict), 4)
    inter, intra = angles["inter_class_nearest"], angles["intra_class_to_reference"]
    assert inter["count"] == N and intra["count"] == N * (V - 1)
    for stats in (inter, intra):
        assert stats["min"] <= stats["p5"] <= stats["p50"] <= stats["p95"] <= stats["max"]
        assert 0 <= stats["frac_below_ict"] <= 1
    e = store.embedding.astype(np.float64)
    expected = np.degrees(np.arccos(np.clip((e[:, 1:] * e[:, :1]).sum(-1), -1, 1)))
    assert intra["mean"] == pytest.approx(expected.mean(), abs=1e-3)
    assert intra["frac_below_ict"] == pytest.approx((expected < np.rad2deg(ict)).mean())


def test_contact_sheet_has_a_row_per_identity_and_a_column_per_image(gen, tmp_path):
    make_store(gen, tmp_path / "v.h5")
    render_variations(gen, tmp_path / "v.h5", tmp_path / "rendered", 16)
    size = contact_sheet(tmp_path / "rendered", tmp_path / "sheet.png", identities=4, tile=32)
    assert size == sheet_size(4, V, 32)  # 4 of 5 identities; the reference and 2 variations
    with Image.open(tmp_path / "sheet.png") as im:
        assert im.size == size and round(im.info["dpi"][0]) == 300
    first = (tmp_path / "sheet.png").read_bytes()
    contact_sheet(tmp_path / "rendered", tmp_path / "sheet.png", identities=4, tile=32)
    assert (tmp_path / "sheet.png").read_bytes() == first
    small = contact_sheet(tmp_path / "rendered", tmp_path / "s.png", identities=1, variations=1)
    assert small == sheet_size(1, 2, 128)
