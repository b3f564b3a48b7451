"""Identity samplers: random, reject and Langevin on the world generator and a tiny FR net."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from worldkit import SMALL_FR, WORLD_SPEC, small_embedder, small_fr_file

import brownface.sampling.geometry as geometry
import brownface.sampling.langevin as langevin_module
from brownface.errors import UserError
from brownface.models.checkpoints import sha256_file
from brownface.models.fr import FRModel, build_backbone
from brownface.sampling.embedder import LatentEmbedder, embed_all
from brownface.sampling.geometry import angle, cosines, min_latent_distance, nearest_angles
from brownface.sampling.langevin import (
    IdentityParams,
    embedding_gradient,
    interaction_forces,
    interaction_forces_reference,
    langevin,
    random_latents,
    repulsion,
)
from brownface.sampling.reject import sample_reject
from brownface.sampling.stages import avoid_set, sample_identities
from brownface.sampling.stats import DRAW_COLUMNS, LANGEVIN_COLUMNS
from brownface.store import EmbeddingStore, IdentityStore
from brownface.world.generator import WorldGenerator

PSI = 0.7  # the config's generator.truncation_psi


def lang(**kwargs) -> IdentityParams:
    """A Langevin recipe."""
    return IdentityParams(algorithm="langevin", **kwargs)


def angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise angles, as the statistics take them."""
    return angle(cosines(a, b))


@pytest.fixture(scope="module")
def embedder() -> LatentEmbedder:
    return small_embedder(WorldGenerator(seed=0, resolution=64))


@pytest.fixture(scope="module")
def embedder64() -> LatentEmbedder:
    """The same models in float64 (the iResNet casts its FC input to fp32; a hook undoes that)."""
    gen = WorldGenerator(seed=0, resolution=64)
    torch.manual_seed(0)
    fr = FRModel(build_backbone(SMALL_FR), SMALL_FR).eval().double()
    fr.backbone.fc.register_forward_pre_hook(lambda m, args: (args[0].to(m.weight.dtype),))
    return LatentEmbedder(gen, fr).eval().double()


@pytest.fixture(scope="module")
def start(embedder):
    """Random start of 32 identities, its embeddings and nearest-neighbour angles."""
    w = random_latents(embedder, 32, PSI, seed=0)
    e = embed_all(embedder, w, 64)
    return w, e, nearest_angles(e, 64)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


# ---------------------------------------------------------------------------------------------
# Forces: batched == one identity at a time.


def test_batched_forces_equal_reference(embedder64, start):
    w, _, nn_theta = start
    w = w[:16].double()
    e = embed_all(embedder64, w, 64)
    assert e.dtype == torch.float64
    d0 = nn_theta.quantile(0.9).item()
    noise = torch.randn(3, e.shape[1], generator=torch.Generator().manual_seed(1))
    avoid = e[:3] + 0.05 * noise.double()
    ref = interaction_forces_reference(embedder64, w, e, k=1.0, d0=d0, avoid=avoid, avoid_d0=d0)
    fast = interaction_forces(
        embedder64, w, e, k=1.0, d0=d0, batch_size=6, block_size=5, avoid=avoid, avoid_d0=d0
    )
    assert ref.norm(dim=1).gt(0).sum() >= 8  # most identities feel a force
    assert relative_error(fast, ref) <= 1e-12  # float64: ~1e-15
    rows = (fast - ref).norm(dim=1) / ref.norm(dim=1).clamp(min=1e-12)
    assert rows.max().item() <= 1e-12
    no_avoid = interaction_forces_reference(embedder64, w, e, k=1.0, d0=d0)
    assert relative_error(no_avoid, ref) > 1e-3  # the avoid set does act


def test_batched_forces_float32_close_to_reference(embedder, start):
    w, e, nn_theta = start
    d0 = nn_theta.quantile(0.9).item()
    ref = interaction_forces_reference(embedder, w[:8], e[:8], k=1.0, d0=d0)
    fast = interaction_forces(embedder, w[:8], e[:8], k=1.0, d0=d0, batch_size=3, block_size=3)
    assert relative_error(fast, ref) <= 1e-4  # float32 rounding, amplified by cancellation


def test_forces_point_away_from_a_close_neighbour(embedder, start):
    """Moving along F lowers the identity's potential (F is minus its gradient)."""
    w, e, _ = start
    w, e = w[:8], e[:8]
    d0 = 1.0  # everything repels
    f = interaction_forces(embedder, w, e, k=1.0, d0=d0, batch_size=8, block_size=8)

    def energy(x: torch.Tensor) -> torch.Tensor:
        th = angles(embed_all(embedder, x, 8), e)
        th = th.masked_fill(torch.eye(8, dtype=torch.bool), d0)
        return repulsion(th, 1.0, d0).sum(1)

    step = 1e-2 / f.norm(dim=1, keepdim=True)
    assert (energy(w + step * f) < energy(w)).float().mean() >= 0.75


# ---------------------------------------------------------------------------------------------
# Blockwise helpers: equal to the dense computation, never N x N.


def test_blockwise_helpers_equal_dense_and_stay_small(start, monkeypatch):
    w, e, _ = start
    n, block = e.shape[0], 5
    shapes: list[tuple[int, ...]] = []

    def recording(a, b, pairwise=True):
        out = cosines(a, b, pairwise)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(geometry, "cosines", recording)
    monkeypatch.setattr(langevin_module, "cosines", recording)
    dense = angles(e, e).masked_fill(torch.eye(n, dtype=torch.bool), float("inf"))
    torch.testing.assert_close(nearest_angles(e, block), dense.amin(1))
    assert max(r * c for r, c in shapes) <= block * block

    shapes.clear()
    rows = torch.arange(3, 10)
    x = e[rows].clone().requires_grad_(True)
    th = angle(cosines(x, e), grad_safe=True)
    th = th.masked_fill(rows[:, None] == torch.arange(n)[None], 0.5)
    (dense_grad,) = torch.autograd.grad(repulsion(th, 2.0, 0.5).sum(), x)
    grad = embedding_gradient(e[rows], e, k=2.0, d0=0.5, block_size=block, index=rows)
    torch.testing.assert_close(grad, dense_grad)
    assert max(r * c for r, c in shapes) <= len(rows) * block

    d = torch.cdist(w, w).masked_fill(torch.eye(n, dtype=torch.bool), float("inf"))
    torch.testing.assert_close(min_latent_distance(w, block), d.min(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Langevin.


def test_langevin_spreads_identities(embedder, start):
    _, _, nn_theta = start
    d0, ict = nn_theta.quantile(0.9).item(), nn_theta.median().item()
    params = lang(n=32, iterations=15, d0=d0, ict=ict)
    result = langevin(embedder, params, seed=0, truncation_psi=PSI)
    final = nearest_angles(result.embeddings, 64)
    assert final.min() > nn_theta.min()
    assert (final < ict).float().mean() < (nn_theta < ict).float().mean()
    assert len(result.stats) == 15 and list(result.stats.columns) == list(LANGEVIN_COLUMNS)
    assert result.stats["iteration"].tolist() == list(range(15))
    first = result.stats.iloc[0]  # computed before the first update: the random start
    assert first["nn_angle_min"] == pytest.approx(nn_theta.min().item(), rel=1e-4)
    assert first["frac_below_ict"] == pytest.approx((nn_theta < ict).float().mean().item())


def test_langevin_resume_is_bit_identical(embedder, start, tmp_path, caplog):
    d0 = start[2].quantile(0.9).item()
    params = lang(n=12, iterations=5, d0=d0, ict=d0, checkpoint_every=2)
    whole = langevin(embedder, params, seed=3, truncation_psi=PSI)
    ckpt = tmp_path / "langevin.h5"
    part = langevin(embedder, params, 3, PSI, checkpoint=ckpt, abort_fn=lambda done: done == 3)
    assert part.embeddings is None and len(part.stats) == 3 and ckpt.exists()
    with caplog.at_level(logging.INFO, logger="brownface"):
        resumed = langevin(embedder, params, seed=3, truncation_psi=PSI, checkpoint=ckpt)
    assert "resuming" in caplog.text and "at iteration 3" in caplog.text
    assert torch.equal(resumed.w, whole.w)
    assert torch.equal(resumed.embeddings, whole.embeddings)
    cols = [c for c in LANGEVIN_COLUMNS if c != "wall_time"]
    pd.testing.assert_frame_equal(resumed.stats[cols], whole.stats[cols])

    # A checkpoint of other parameters is ignored: the run starts over.
    caplog.clear()
    other = lang(n=12, iterations=5, d0=d0, ict=d0, k=2.0)
    with caplog.at_level(logging.WARNING, logger="brownface"):
        fresh = langevin(embedder, other, seed=3, truncation_psi=PSI, checkpoint=ckpt)
    assert "starting over" in caplog.text
    assert torch.equal(fresh.w, langevin(embedder, other, seed=3, truncation_psi=PSI).w)

    # So is one of another truncation (the generator's setting, not the recipe's).
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="brownface"):
        langevin(embedder, other, seed=3, truncation_psi=0.5, checkpoint=ckpt)
    assert "starting over" in caplog.text


def test_langevin_moves_identities_away_from_the_avoid_set(embedder, start):
    _, e, nn_theta = start
    avoid = e[:16] + 0.01 * torch.randn(16, e.shape[1], generator=torch.Generator().manual_seed(2))
    d0 = nn_theta.quantile(0.5).item()
    params = lang(n=16, iterations=8, d0=d0, ict=d0, k_latent=0.0, avoid_d0=2 * d0)
    result = langevin(embedder, params, seed=0, truncation_psi=PSI, avoid=avoid)
    before = angles(e[:16], avoid).amin(1)  # each identity starts next to its own avoid point
    after = angles(result.embeddings, avoid).amin(1)
    assert after.mean() > 10 * before.mean()


# ---------------------------------------------------------------------------------------------
# random and reject.


def test_random_rows_do_not_depend_on_n(embedder):
    w5 = random_latents(embedder, 5, PSI, seed=7)
    w10 = random_latents(embedder, 10, PSI, seed=7)
    assert torch.equal(w5, w10[:5])
    assert not torch.equal(w5, random_latents(embedder, 5, PSI, seed=8))
    spread = (random_latents(embedder, 5, 0.5, seed=7) - embedder.w_avg).norm(dim=1)
    torch.testing.assert_close(spread, (w5 - embedder.w_avg).norm(dim=1) * 0.5 / PSI)


def test_reject_accepts_far_apart_identities_in_candidate_order(embedder, start):
    _, e, _ = start
    pairs = angles(e, e)[torch.triu_indices(32, 32, offset=1).unbind()]
    ict = pairs.quantile(0.3).item()
    params = IdentityParams(algorithm="reject", n=8, ict=ict, max_tries=400, batch_size=16)
    result = sample_reject(embedder, params, seed=0, truncation_psi=PSI)
    theta = angles(result.embeddings, result.embeddings)
    assert theta[torch.triu_indices(8, 8, offset=1).unbind()].min() >= ict
    one = IdentityParams(**{**params.to_dict(), "batch_size": 1})
    one_by_one = sample_reject(embedder, one, 0, PSI)
    torch.testing.assert_close(one_by_one.w, result.w, rtol=0, atol=1e-5)
    assert result.stats["candidates"].item() == one_by_one.stats["candidates"].item() > 8

    avoid = result.embeddings[:2]  # the first two accepted are now forbidden
    params = IdentityParams(**{**params.to_dict(), "avoid_d0": ict})
    avoiding = sample_reject(embedder, params, seed=0, truncation_psi=PSI, avoid=avoid)
    assert angles(avoiding.embeddings, avoid).min() >= ict


def test_reject_impossible_settings_raise(embedder):
    params = IdentityParams(algorithm="reject", n=5, ict=3.0, max_tries=20)
    with pytest.raises(UserError, match=r"accepted only 1 of 5 identities after 20 candidates"):
        sample_reject(embedder, params, seed=0, truncation_psi=PSI)


# ---------------------------------------------------------------------------------------------
# The stage and the params.


def stage(params: IdentityParams, fr, tmp_path, name="recipe", **kwargs) -> None:
    """sample_identities with the world's spec and the small FR network's model.pt."""
    sample_identities(
        WORLD_SPEC,
        fr,
        params,
        name=name,
        seed=1,
        device="cpu",
        out=tmp_path / "identities.h5",
        stats=tmp_path / "stats.csv",
        checkpoint=tmp_path / "checkpoint.h5",
        **kwargs,
    )


def test_sample_identities_writes_store_and_stats(embedder, tmp_path, caplog):
    fr = small_fr_file(tmp_path / "fr.pt")
    out, stats, ckpt = (
        tmp_path / "identities.h5",
        tmp_path / "stats.csv",
        tmp_path / "checkpoint.h5",
    )
    params = lang(n=10, iterations=3, d0=0.3, ict=0.2, checkpoint_every=1)
    stage(params, fr, tmp_path)
    store = IdentityStore.read(out)
    assert store.identity.tolist() == list(range(10))
    assert store.w.shape == (10, embedder.w_dim) and store.embedding.shape == (10, 32)
    direct = langevin(embedder, params, seed=1, truncation_psi=PSI)
    assert torch.equal(torch.from_numpy(store.w), direct.w.float())
    assert torch.equal(torch.from_numpy(store.embedding), direct.embeddings.float())
    prov = store.provenance
    assert prov["identity_params"]["n"] == 10 and prov["recipe"]["name"] == "recipe"
    assert prov["generator"]["truncation_psi"] == PSI and prov["generator"]["kind"] == "world"
    assert len(prov["reference_fr"]["checkpoint_sha256"]) == 64
    table = pd.read_csv(stats)
    assert list(table.columns) == list(LANGEVIN_COLUMNS)
    assert table["iteration"].tolist() == [0, 1, 2]

    # The job keeps its checkpoint: a rerun (its output discarded) resumes at the end.
    assert ckpt.exists()
    first = out.read_bytes()
    out.unlink()
    with caplog.at_level(logging.INFO, logger="brownface"):
        stage(params, fr, tmp_path)
    assert "at iteration 3" in caplog.text and out.read_bytes() == first

    stage(IdentityParams(algorithm="random", n=4), fr, tmp_path)
    assert list(pd.read_csv(stats).columns) == list(DRAW_COLUMNS)
    assert len(IdentityStore.read(out)) == 4
    with pytest.raises(UserError, match="avoid"):
        IdentityParams(algorithm="random", n=4, avoid=str(out))
    IdentityStore(
        identity=np.arange(2),
        w=np.zeros((2, 32), np.float32),
        embedding=np.ones((2, 7), np.float32),
    ).write(tmp_path / "avoid.h5")
    with pytest.raises(UserError, match=r"avoid.h5: avoid embeddings must be \[M, 32\]"):
        stage(lang(n=4, iterations=1, avoid=str(tmp_path / "avoid.h5")), fr, tmp_path)


def test_an_embeddings_store_repels_langevin_identities(tmp_path):
    """Real faces as an embeddings store: each label's mean repels; the run differs from one
    without it, ends farther from those faces, and its store records the avoid file's sha256."""
    fr = small_fr_file(tmp_path / "fr.pt")
    params = lang(n=8, iterations=6, d0=0.4, ict=0.4, k_latent=0.0)
    free = tmp_path / "free"
    free.mkdir()
    stage(params, fr, free)
    start = IdentityStore.read(free / "identities.h5")
    # "Real" identities planted next to where the free run's identities end, two images each.
    rng = np.random.default_rng(0)
    images = np.repeat(start.embedding, 2, axis=0) + 0.01 * rng.standard_normal((16, 32))
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    real = EmbeddingStore(
        label=np.repeat([f"person{i}" for i in range(8)], 2),
        path=np.array([f"real/{i}.png" for i in range(16)]),
        embedding=images.astype(np.float32),
    ).write(tmp_path / "real.h5")
    avoiding = tmp_path / "avoiding"
    avoiding.mkdir()
    stage(IdentityParams(**{**params.to_dict(), "avoid": str(real), "avoid_d0": 0.8}), fr, avoiding)
    store = IdentityStore.read(avoiding / "identities.h5")
    record = store.provenance["avoid"]
    assert record == {
        "path": str(real), "kind": "embeddings", "identities": 8, "sha256": sha256_file(real)
    }  # fmt: skip
    assert "avoid" not in start.provenance
    means = torch.from_numpy(EmbeddingStore.read(real).identity_means()[1])
    near_free = angle(cosines(torch.from_numpy(start.embedding), means)).amin(1)
    near_avoiding = angle(cosines(torch.from_numpy(store.embedding), means)).amin(1)
    assert near_free.mean() < 0.05 and near_avoiding.mean() > 0.4  # radians
    # avoid_images: every image repels (16 of them), not each person's mean (8).
    embeddings, every = avoid_set(real, images=True)
    assert every == {**record, "identities": 16, "images": True}
    assert np.array_equal(embeddings, EmbeddingStore.read(real).embedding)
    assert avoid_set(real)[0].shape == (8, 32)
    with pytest.raises(UserError, match="expected an identities or embeddings store"):
        avoid_set(tmp_path / "free" / "checkpoint.h5")


def test_params_defaults_and_validation():
    p = IdentityParams.from_config({"algorithm": "langevin", "n": 100})
    assert (p.iterations, p.k, p.d0, p.timestep) == (100, 1.0, 1.4, -0.3)
    assert (p.mu, p.eta, p.k_latent, p.ict, p.tries, p.avoid_radius) == (
        1.0, 0.01, 0.1, 1.4, 10_000, 1.4,
    )  # fmt: skip
    assert isinstance(lang(n=2, k=2).k, float)
    with pytest.raises(UserError, match="unknown key 'd_0'"):
        IdentityParams.from_config({"algorithm": "langevin", "n": 4, "d_0": 1.0})
    with pytest.raises(UserError, match="config identities.x: missing required key 'n'"):
        IdentityParams.from_config({"algorithm": "langevin"}, key="identities.x")
    with pytest.raises(UserError, match=r"config identities.lang.n: expected a value >= 1, got 0"):
        IdentityParams.from_config({"algorithm": "langevin", "n": 0}, key="identities.lang")
    for bad in (
        {"algorithm": "repulse", "n": 2},
        {"algorithm": "langevin", "n": 0},
        {"algorithm": "langevin", "n": 2, "timestep": 0},
        {"algorithm": "langevin", "n": 2, "d0": -1},
        {"algorithm": "langevin", "n": 2.5},
        {"algorithm": "langevin", "n": True},
        {"algorithm": "langevin", "n": 1},  # adaptive dt needs two identities
    ):
        with pytest.raises(UserError) as err:
            IdentityParams(**bad)
        assert "\n" not in str(err.value)
