"""Embedding face collections into embeddings stores: the four sources, shard invariance,
resume, and the generator's FR crop for frames of the generator."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from worldkit import small_fr

from brownface.dataset.layout import IndexWriter
from brownface.errors import UserError
from brownface.evaluate.binfile import write_bin
from brownface.imageio import encode, from_uint8, to_uint8
from brownface.leakage.collection import face_collection
from brownface.leakage.embed import EmbedParams, embed_collection, embed_images
from brownface.store import EmbeddingStore, merge_shards
from brownface.world.generator import WorldGenerator


def faces(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def image_folder(root: Path, people: int = 3, per_person: int = 4) -> np.ndarray:
    images = faces(people * per_person)
    for i, image in enumerate(images):
        path = root / f"person{i // per_person}" / f"{i % per_person}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return images


def test_the_four_sources_list_labels_and_names(tmp_path):
    image_folder(tmp_path / "folder")
    c = face_collection("image_folder", tmp_path / "folder")
    assert c.labels == [f"person{i // 4}" for i in range(12)]
    assert c.names[:2] == ["person0/0.png", "person0/1.png"] and c.image(0).shape == (16, 16, 3)

    write_bin(tmp_path / "set.bin", [encode(f, "png") for f in faces(4)], [True, False])
    b = face_collection("bin", tmp_path / "set.bin")
    assert b.names == b.labels == ["set.bin#0", "set.bin#1", "set.bin#2", "set.bin#3"]
    assert np.array_equal(b.image(2), faces(4)[2])

    frames = tmp_path / "ffhq" / "00000"
    frames.mkdir(parents=True)
    for i, image in enumerate(faces(2)):
        Image.fromarray(image).save(frames / f"0000{i}.png")
    g = face_collection("generator_frames", tmp_path / "ffhq")
    assert g.labels == ["00000/00000", "00000/00001"] and g.generator_frame

    rendered = tmp_path / "rendered"
    index = IndexWriter(rendered)
    for i, image in enumerate(faces(4)):
        index.add(f"images/{i // 2:05d}/{i % 2}.png", encode(image, "png"), i // 2, str(i % 2))
    index.write()
    r = face_collection("rendered", rendered)
    assert r.labels == ["0", "0", "1", "1"] and r.names[3] == "images/00001/1.png"

    Image.fromarray(faces(1)[0]).save(tmp_path / "folder" / "loose.png")
    with pytest.raises(UserError, match="loose.png is not inside an identity folder"):
        face_collection("image_folder", tmp_path / "folder")
    with pytest.raises(UserError, match="expected one of image_folder"):
        face_collection("lfw", tmp_path / "folder")


def test_embeddings_are_unit_and_do_not_depend_on_shards(tmp_path):
    images = image_folder(tmp_path / "folder", people=5, per_person=5)  # 25 images
    collection = face_collection("image_folder", tmp_path / "folder")
    fr = small_fr()
    params = EmbedParams(batch_size=4)
    whole = embed_collection(collection, fr, input_size=16, params=params, provenance={"fr": 1})
    direct = whole.write(tmp_path / "whole.h5")
    shards = [
        embed_collection(collection, fr, input_size=16, shard=k, shards=3, params=params,
                         provenance={"fr": 1}).write(tmp_path / f"shard{k}.h5")
        for k in range(3)
    ]  # fmt: skip
    merged = merge_shards(shards, tmp_path / "merged.h5", expected=25)
    assert merged.read_bytes() == direct.read_bytes()
    store = EmbeddingStore.read(direct)
    assert np.allclose(np.linalg.norm(store.embedding, axis=1), 1, atol=1e-5)
    one = embed_images(fr, from_uint8(images[7:8]), 16)[0].numpy()
    assert np.allclose(store.embedding[7], one, atol=1e-5)  # batching does not matter
    assert store.identity_means()[0].tolist() == [f"person{i}" for i in range(5)]
    assert store.provenance["collection"] == {
        "source": "image_folder", "location": str(tmp_path / "folder"), "images": 25
    }  # fmt: skip


def test_a_failed_job_resumes_from_its_checkpoint(tmp_path, caplog):
    image_folder(tmp_path / "folder", people=4, per_person=5)  # 20 images
    collection = face_collection("image_folder", tmp_path / "folder")
    fr, params = small_fr(), EmbedParams(batch_size=3, checkpoint_every=1)
    expected = embed_collection(collection, fr, input_size=16, params=params)
    broken = tmp_path / "folder" / "person3" / "2.png"  # image 17, in the sixth batch
    good = broken.read_bytes()
    broken.write_bytes(b"not a png")
    ckpt = tmp_path / "ckpt.h5"
    with pytest.raises(UserError):
        embed_collection(collection, fr, input_size=16, params=params, checkpoint=ckpt)
    broken.write_bytes(good)
    with caplog.at_level(logging.INFO, logger="brownface"):
        resumed = embed_collection(collection, fr, input_size=16, params=params, checkpoint=ckpt)
    assert "resuming at image 15 of 20" in caplog.text
    assert np.array_equal(resumed.embedding, expected.embedding)
    # Another network is another run: its checkpoint is not resumed.
    caplog.clear()
    torch.manual_seed(1)
    other = small_fr()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.1)
    with caplog.at_level(logging.INFO, logger="brownface"):
        embed_collection(collection, other, input_size=16, params=params, checkpoint=ckpt,
                         provenance={"fr": "other"})  # fmt: skip
    assert "resuming" not in caplog.text


def test_generator_frames_are_cut_as_the_generator_samples_are(tmp_path):
    world = WorldGenerator(seed=0)
    fr = small_fr()
    w = world.mapping(torch.randn(6, world.z_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        frames = world.synthesis(w)
        reference = fr(world.fr_crop(frames, 16))
    reference = reference / reference.norm(dim=1, keepdim=True)
    for i, frame in enumerate(to_uint8(frames)):
        # Saved at twice the generator's resolution, as FFHQ's 1024 images for a 256 network.
        big = Image.fromarray(frame).resize((128, 128), Image.BICUBIC)
        big.save(tmp_path / f"{i:05d}.png")
    collection = face_collection("generator_frames", tmp_path)
    store = embed_collection(collection, fr, input_size=16, crop=world.fr_crop,
                             resolution=world.img_resolution)  # fmt: skip
    cos = (torch.from_numpy(store.embedding) * reference).sum(1)
    assert cos.min() > 0.995, cos  # 0.9997 and up: only the PNG rounding differs
    with pytest.raises(UserError, match="need the generator's FR crop"):
        embed_collection(collection, fr, input_size=16)


def test_a_dataset_measured_against_real_faces(tmp_path):
    """Identities that are real faces seen again are leaked; thresholds come from the FR's
    impostor pairs of a .bin set, and the JSON records what was measured against what."""
    import json

    from worldkit import small_fr_file

    from brownface.leakage.stages import impostor_cosines, measure_dataset_leakage
    from brownface.models.fr import load_fr
    from brownface.store import IdentityStore

    spec = small_fr_file(tmp_path / "fr.pt")
    fr = load_fr(spec)
    people = faces(40, seed=3)
    write_bin(tmp_path / "set.bin", [encode(f, "png") for f in people], [True, False] * 10)
    image_folder(tmp_path / "real", people=6, per_person=1)
    real = embed_collection(face_collection("image_folder", tmp_path / "real"), fr, input_size=16)
    real_path = real.write(tmp_path / "real.h5")
    # Two synthetic identities are real people 0 and 3 exactly; the others random faces.
    others = embed_images(fr, from_uint8(faces(4, seed=4)), 16).numpy()
    embedding = np.concatenate([real.embedding[[0, 3]], others])
    IdentityStore(identity=np.arange(6), w=np.zeros((6, 8), np.float32), embedding=embedding).write(
        tmp_path / "identities.h5"
    )
    out = tmp_path / "leakage.json"
    measure_dataset_leakage(
        tmp_path / "identities.h5", real_path, tmp_path / "set.bin", spec,
        fars=[0.1], k=3, out=out, device="cpu",
    )  # fmt: skip
    record = json.loads(out.read_text())
    impostors = impostor_cosines(tmp_path / "set.bin", fr, 16)
    assert impostors.size == 10 and record["verification_set"]["impostor_pairs"] == 10
    threshold = record["thresholds"]["0.1"]["cosine"]
    assert threshold == pytest.approx(np.sort(impostors)[::-1][1])
    nearest = (torch.from_numpy(embedding) @ torch.from_numpy(real.embedding).T).amax(1)
    assert record["leaked"]["0.1"] == pytest.approx(float((nearest > threshold).double().mean()))
    assert {p["real_name"] for p in record["closest"][:2]} == {"person0", "person3"}
    assert record["leaked"]["0.1"] >= 2 / 6 and threshold < 0.999
    assert record["real"] == 6 and len(record["real_faces"]["sha256"]) == 64
    assert "variations" not in record
    # Every variation measured too: identity 2's second image is real person 5.
    from brownface.store import VariationStore

    images = np.stack([embedding, embedding], axis=1)
    images[2, 1] = real.embedding[5]
    VariationStore(
        identity=np.arange(6), w=np.zeros((6, 2, 8), np.float32), embedding=images
    ).write(tmp_path / "variations.h5")
    measure_dataset_leakage(
        tmp_path / "identities.h5", real_path, tmp_path / "set.bin", spec,
        fars=[0.1], k=3, out=out, device="cpu", variations=tmp_path / "variations.h5",
    )  # fmt: skip
    again = json.loads(out.read_text())
    per_image = again["variations"]
    assert per_image["synthetic"] == 12 and "closest" not in per_image
    flat = torch.from_numpy(images.reshape(12, -1))
    called = ((flat @ torch.from_numpy(real.embedding).T).amax(1) > threshold).reshape(6, 2)
    assert per_image["leaked"]["0.1"] == pytest.approx(float(called.double().mean()))
    assert per_image["identities_with_a_leaked_image"]["0.1"] == pytest.approx(
        float(called.any(1).double().mean())
    )
    assert called[2, 1] and per_image["identities_with_a_leaked_image"]["0.1"] >= 3 / 6
    assert {k: again[k] for k in ("leaked", "thresholds")} == {
        k: record[k] for k in ("leaked", "thresholds")
    }  # the identities' measure is unchanged
