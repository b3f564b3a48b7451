"""The generator seam: GeneratorSpec, the kind registry, load_generator, the crop to an FR input."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from worldkit import small_fr_file

from brownface import config
from brownface.dataset.layout import read_index
from brownface.dataset.render import RenderSettings
from brownface.dataset.stages import merge_render_shards, render_dataset
from brownface.errors import UserError
from brownface.models import generator as generator_module
from brownface.models.align import apply_matrix, arcface_template
from brownface.models.generator import GeneratorSpec, generator_spec, load_generator
from brownface.sampling.dispersion import VariationParams
from brownface.sampling.langevin import IdentityParams
from brownface.sampling.stages import merge_variations, sample_identities, sample_variations
from brownface.store import IdentityStore, VariationStore
from brownface.world.generator import WorldGenerator


def test_the_world_kind_through_its_spec():
    spec = generator_spec(config.validate({}))
    assert spec.kind == "world" and spec.truncation_psi == 0.7 and spec.noise_mode == "const"
    assert spec.options == dict(
        seed=0, resolution=64, identity_dim=16, z_dim=32, w_dim=32,
        training_identities=50, training_share=0.1,
    )  # fmt: skip
    assert GeneratorSpec.from_dict(spec.to_dict()) == spec
    assert "checkpoint_sha256" not in spec.provenance()
    gen = load_generator(spec)
    assert isinstance(gen, WorldGenerator) and gen.spec == spec and not gen.training
    world = WorldGenerator(seed=0, training_identities=50, training_share=0.1)
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    w = gen.mapping(z, truncation_psi=0.7)
    assert torch.equal(w, world.mapping(z, truncation_psi=0.7))
    assert torch.equal(gen.synthesis(w), world.synthesis(w))
    assert torch.equal(gen.synthesis(w[:, None]), gen.synthesis(w))  # [B, num_ws, w_dim]
    with pytest.raises(ValueError, match=r"\[B, 32\] or \[B, 1, 32\]"):
        gen.synthesis(w[:, None].expand(3, 2, 32))


def test_unread_settings_are_left_out_of_a_stage_spec():
    cfg = config.validate({"generator": {"truncation_psi": 0.5}})
    spec = generator_spec(cfg, unused=("truncation_psi", "noise_mode"))
    assert spec.truncation_psi is None and spec.noise_mode is None
    assert spec == generator_spec(config.validate({}), unused=("truncation_psi", "noise_mode"))
    with pytest.raises(ValueError):
        generator_spec(cfg, unused=("options",))


def test_fr_crop_maps_the_frame_landmarks_onto_the_arcface_template(world):
    for size in (16, 112):
        crop = world.fr_similarity(size)
        placed = apply_matrix(world.frame_landmarks()[None], crop[None])[0]
        # A similarity fitted to 5 points: the residual is how far the world's mean face is
        # from the ArcFace template's proportions (a few per cent of the crop).
        assert (placed - arcface_template(size)).norm(dim=1).max() < 0.05 * size
    # The spec's crop replaces the kind's: the template of a 64 px frame -> x (size / 64).
    spec = replace(world.spec, crop=arcface_template(64).tolist())
    crop = load_generator(spec).fr_similarity(112)
    torch.testing.assert_close(crop, torch.tensor([[1.75, 0, 0.375], [0, 1.75, 0.375]]))


def test_bad_specs_are_one_line():
    with pytest.raises(
        UserError, match="generator spec kind: expected one of 'world', 'stylegan2', got 'gan'"
    ):
        GeneratorSpec(kind="gan")
    with pytest.raises(UserError, match="noise_mode"):
        GeneratorSpec(kind="world", noise_mode="loud")
    with pytest.raises(UserError, match="crop: expected 5 points"):
        GeneratorSpec(kind="world", crop=[[0, 0]] * 4)
    with pytest.raises(UserError, match="generator.checkpoint: the world generator .* reads no"):
        load_generator(GeneratorSpec(kind="world", checkpoint="G.pkl", options={"seed": 0}))
    with pytest.raises(UserError, match="unknown key 'psi'"):
        GeneratorSpec.from_dict({"kind": "world", "psi": 0.5})


def test_a_new_kind_is_one_module_and_one_registry_line(monkeypatch, tmp_path):
    """tests/standin_generator.py plus the registry entry: every sampling stage runs on it."""
    monkeypatch.setitem(generator_module.GENERATOR_KINDS, "standin", "standin_generator")
    spec = generator_spec(config.validate({"generator": {"kind": "standin"}}))
    assert spec.options == {"w_dim": 8}
    fr = small_fr_file(tmp_path / "fr.pt")
    run = dict(seed=0, device="cpu")
    sample_identities(
        spec, fr, IdentityParams(algorithm="langevin", n=6, iterations=2, d0=1.0, ict=1.0),
        name="langevin", out=tmp_path / "identities.h5", stats=tmp_path / "stats.csv",
        checkpoint=tmp_path / "ck.h5", **run,
    )  # fmt: skip
    identities = IdentityStore.read(tmp_path / "identities.h5")
    assert identities.w.shape == (6, 8) and np.isfinite(identities.embedding).all()
    assert identities.provenance["generator"]["kind"] == "standin"
    params = VariationParams(algorithm="dispersion", variations=3, iterations=1)
    sample_variations(
        replace(spec, truncation_psi=None), fr, params, dataset="d", shard=0, shards=1,
        identities=tmp_path / "identities.h5", covariates=None, out=tmp_path / "shard000.h5",
        stats=tmp_path / "vstats.csv", checkpoint=tmp_path / "vck.h5", **run,
    )  # fmt: skip
    merge_variations([str(tmp_path / "shard000.h5")], str(tmp_path / "identities.h5"),
                     str(tmp_path / "variations.h5"))  # fmt: skip
    assert VariationStore.read(tmp_path / "variations.h5").w.shape == (6, 4, 8)
    render_dataset(
        spec, RenderSettings(), variations=tmp_path / "variations.h5",
        out_root=tmp_path / "shard000", image_size=16, shard=0, shards=1, device="cpu",
    )  # fmt: skip
    merge_render_shards([str(tmp_path / "shard000")], tmp_path / "rendered")
    assert len(read_index(tmp_path / "rendered")) == 24
