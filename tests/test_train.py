"""FR training: a tiny model learns, resume is exact, model.pt round-trips, data errors are clear."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from brownface.dataset.layout import read_index
from brownface.errors import UserError
from brownface.evaluate.binfile import write_bin
from brownface.evaluate.stages import evaluate_verification
from brownface.imageio import encode
from brownface.models.fr import FRModel, FRSpec, build_backbone, load_fr
from brownface.train.loop import Trainer
from brownface.train.recipe import TrainRecipe
from brownface.world.fr_train_set import build_fr_train_set
from brownface.world.renderer import FaceRenderer

TINY = TrainRecipe(
    arch="iresnet",
    layers=(1, 1, 1, 1),
    widths=(4, 8, 8, 16),
    input_size=16,
    embedding_size=16,
    dropout=0.1,
    head="adaface",
    batch_size=16,
    lr=0.05,
    epochs=2,
    milestones=(1,),
    log_every=1,
    workers=0,
    p_crop=0.5,
    p_lowres=0.5,
    p_photo=0.5,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "set"
    build_fr_train_set(
        FaceRenderer(64, seed=0), 0, root, identities=8, images_per_identity=8, image_size=16
    )
    return root


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_index_lists_every_image(dataset):
    index = read_index(dataset)
    assert len(index) == 64 and index.num_classes == 8
    assert index.paths[0].startswith("images/000000/")


def test_a_tiny_model_lowers_the_loss(dataset, tmp_path):
    recipe = replace(
        TINY,
        epochs=6,
        milestones=(5,),
        dropout=0.0,
        p_crop=0,
        p_lowres=0,
        p_photo=0,
        head="arcface",
        head_kwargs={"s": 16.0, "m": 0.2},
    )
    trainer = Trainer(recipe, dataset, tmp_path / "out", tmp_path / "ckpt.pt")
    assert trainer.run()
    losses = [r["loss"] for r in trainer.history if "loss" in r]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])
    for name in ("model.pt", "train_log.csv", "validation.json"):
        assert (tmp_path / "out" / name).is_file()


@pytest.mark.parametrize(("log_every", "abort_at"), [(1, 6), (3, 5)])
def test_interrupt_and_resume_equals_uninterrupted(dataset, tmp_path, log_every, abort_at):
    recipe = replace(TINY, log_every=log_every)
    straight = Trainer(recipe, dataset, tmp_path / "a", tmp_path / "a.pt")
    assert straight.run()
    # The same run, killed mid-epoch 1 (8 steps in all; with log_every 3, in the middle of a
    # log row's window) and started again from its checkpoint.
    first = Trainer(recipe, dataset, tmp_path / "b", tmp_path / "b.pt")
    assert not first.run(abort_fn=lambda step: step == abort_at)
    assert not (tmp_path / "b" / "model.pt").exists()
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    second = Trainer(recipe, dataset, tmp_path / "b", tmp_path / "b.pt")
    calls = []
    assert second.run(progress=lambda step, total: calls.append((step, total)))
    assert calls[0] == (abort_at, 8) and calls[-1] == (8, 8)  # progress counts the resumed steps
    assert second.global_step == straight.global_step == 8
    assert states_equal(straight.model.backbone.state_dict(), second.model.backbone.state_dict())
    assert states_equal(straight.head.state_dict(), second.head.state_dict())

    def losses(trainer):
        return [(r["step"], r["loss"], r["lr"]) for r in trainer.history if "loss" in r]

    assert losses(second) == losses(straight)


def test_checkpoint_of_other_images_with_the_same_names_is_not_resumed(dataset, tmp_path):
    """Re-rendered data (same paths and labels, other pixels) must not resume a checkpoint."""
    Trainer(TINY, dataset, tmp_path / "a", tmp_path / "a.pt").run(abort_fn=lambda step: step == 3)
    other = tmp_path / "other"
    build_fr_train_set(
        FaceRenderer(64, seed=0), 1, other, identities=8, images_per_identity=8, image_size=16
    )
    assert read_index(other).paths == read_index(dataset).paths
    assert not Trainer(TINY, other, tmp_path / "a", tmp_path / "a.pt").try_resume()
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)  # the same images elsewhere: the same data
    assert Trainer(TINY, copy, tmp_path / "a", tmp_path / "a.pt").try_resume()


def test_stale_checkpoint_of_another_recipe_is_not_resumed(dataset, tmp_path):
    Trainer(TINY, dataset, tmp_path / "a", tmp_path / "a.pt").run(abort_fn=lambda step: step == 3)
    other = Trainer(replace(TINY, lr=0.01), dataset, tmp_path / "a", tmp_path / "a.pt")
    assert not other.try_resume() and other.global_step == 0
    fresh = Trainer(replace(TINY, lr=0.01), dataset, tmp_path / "f", tmp_path / "f.pt")
    assert other.run() and fresh.run()
    assert states_equal(other.model.backbone.state_dict(), fresh.model.backbone.state_dict())


def test_model_pt_loads_back_with_its_spec(dataset, tmp_path):
    trainer = Trainer(replace(TINY, epochs=1), dataset, tmp_path / "out", tmp_path / "ckpt.pt")
    trainer.run()
    loaded = load_fr({"kind": "brownface", "checkpoint": str(tmp_path / "out" / "model.pt")})
    assert loaded.spec.layers == (1, 1, 1, 1) and loaded.spec.input_size == 16
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    trainer.model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), trainer.model(x))
    payload = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert set(payload) == {"format", "version", "spec", "state_dict"}
    assert json.loads(payload["spec"])["kind"] == "brownface"


def test_fr_model_resizes_and_converts_colour():
    spec = FRSpec(
        kind="iresnet",
        arch="iresnet",
        layers=(1, 1, 1, 1),
        widths=(4, 4, 4, 4),
        input_size=16,
        embedding_size=8,
    )
    model = FRModel(build_backbone(spec), spec).eval()
    bgr = FRModel(model.backbone, replace(spec, colour="bgr")).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert model(x).shape == (2, 8)
        assert torch.allclose(bgr(x), model(x.flip(1)))


def test_missing_index_and_images_are_clear(tmp_path):
    with pytest.raises(UserError, match="no index.csv"):
        read_index(tmp_path)
    (tmp_path / "index.csv").write_text("path,identity,label\nimages/000000/000.png,0,000\n")
    with pytest.raises(UserError, match="does not exist"):
        read_index(tmp_path)
    (tmp_path / "index.csv").write_text("file,id\nx,0\n")
    with pytest.raises(UserError, match=r"expected columns path,identity,label\[,sha256\]"):
        read_index(tmp_path)


def test_evaluate_verification_writes_a_result(dataset, tmp_path):
    trainer = Trainer(
        replace(TINY, epochs=1), dataset, tmp_path / "out", tmp_path / "ckpt.pt", name="tiny"
    )
    trainer.run()
    rng = np.random.default_rng(0)
    images = [encode(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "png") for _ in range(40)]
    write_bin(tmp_path / "set.bin", images, [i % 2 == 0 for i in range(20)])
    spec = {"kind": "brownface", "checkpoint": str(tmp_path / "out" / "model.pt")}
    evaluate_verification(
        spec, tmp_path / "set.bin", tmp_path / "r.json", name="set", model_name="tiny"
    )
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["benchmark"] == "set" and result["n_pairs"] == 20 and 0 <= result["accuracy"] <= 1
    assert result["model"] == "tiny" and result["model_kind"] == "brownface"
    assert result["training_data"]["fingerprint"] == trainer.data_fingerprint
    assert result["training_data"]["images"] == 64 and len(result["model_sha256"]) == 64
