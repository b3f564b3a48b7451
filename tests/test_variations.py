"""Dispersion and DisCo on the demo world: physics, determinism, sharding, resume, errors."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from worldkit import WORLD_SPEC, small_embedder, small_fr_file

from brownface.errors import UserError
from brownface.sampling.disco import disco_directions
from brownface.sampling.dispersion import (
    VariationParams,
    Variations,
    disperse,
    dispersion_forces,
    dispersion_forces_ref,
    dispersion_step,
    iteration_noise,
    start_latents,
    start_noise,
)
from brownface.sampling.embedder import LatentEmbedder
from brownface.sampling.stages import merge_variations, sample_variations
from brownface.sampling.stats import VARIATION_COLUMNS
from brownface.sharding import shard_range
from brownface.store import CovariateStore, IdentityStore, VariationStore
from brownface.world.generator import WorldGenerator
from brownface.world.renderer import EXPRESSIONS

N_IDS = 5
# The world's latents are 32-d with ||w - w_avg|| ~ 3, so the paper's r_w = 12 (for 512-d
# StyleGAN latents) would blow the variations apart; everything else is the paper's.
PARAMS = VariationParams(
    algorithm="dispersion", variations=8, iterations=5, r_w=2.0, batch_size=16, checkpoint_every=2
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def embedder(world: WorldGenerator) -> LatentEmbedder:
    return small_embedder(world)


@pytest.fixture(scope="module")
def embedder64(embedder: LatentEmbedder) -> LatentEmbedder:
    """The same map in float64: batch-composition rounding vanishes, so equalities are strict."""
    return copy.deepcopy(embedder).double()


@pytest.fixture(scope="module")
def identities(tmp_path_factory, world: WorldGenerator, embedder: LatentEmbedder) -> Path:
    z = torch.randn(N_IDS, world.z_dim, generator=torch.Generator().manual_seed(1))
    w = world.mapping(z, truncation_psi=0.7)
    with torch.no_grad():
        e = embedder(w)
    path = tmp_path_factory.mktemp("ids") / "identities.h5"
    IdentityStore(np.arange(N_IDS), w.numpy(), e.numpy(), provenance={"test": 1}).write(path)
    return path


def _covariate_store(directions: dict[str, np.ndarray], w: np.ndarray, w_avg: np.ndarray):
    """A covariates store of unit directions, signed distances measured from w_avg."""
    cols: dict[str, list] = {k: [] for k in ("pos_mean", "pos_std", "neg_mean", "neg_std")}
    cols.update(n_pos=[], n_neg=[])
    for n in directions.values():
        s = (w - w_avg) @ n
        pos, neg = s[s > 0], s[s < 0]
        cols["pos_mean"].append(pos.mean())
        cols["pos_std"].append(pos.std())
        cols["neg_mean"].append(neg.mean())
        cols["neg_std"].append(neg.std())
        cols["n_pos"].append(pos.size)
        cols["n_neg"].append(neg.size)
    d = len(directions)
    return CovariateStore(
        name=np.array(list(directions)),
        direction=np.stack(list(directions.values())).astype(np.float32),
        scale=np.ones(d, np.float32),
        accuracy=np.ones(d, np.float32),
        **{k: np.asarray(v) for k, v in cols.items()},
    )


@pytest.fixture(scope="module")
def covariates(tmp_path_factory, world: WorldGenerator) -> Path:
    """Mean-difference directions of latents labelled by the world's oracle."""
    z = torch.randn(4000, world.z_dim, generator=torch.Generator().manual_seed(2))
    w = world.mapping(z, truncation_psi=0.7)
    truth = world.nuisance_params(w)
    w = w.numpy().astype(np.float64)
    labels = {"pose": truth["yaw"] > 0, "illumination": truth["light_azimuth"] > 0}
    for k, name in enumerate(EXPRESSIONS):
        x = truth["expression"][:, k]
        labels[name] = x > x.median()
    directions = {}
    for name, positive in labels.items():
        pos = positive.numpy()
        n = w[pos].mean(0) - w[~pos].mean(0)
        directions[name] = n / np.linalg.norm(n)
    path = tmp_path_factory.mktemp("cov") / "covariates.h5"
    _covariate_store(directions, w, world.w_avg.double().numpy()).write(path)
    return path


def _run(
    embedder, identities, params=PARAMS, start=0, stop=N_IDS, covariates=None, **kwargs
) -> Variations | None:
    """Dispersion (DisCo with ``covariates``) of identities [start, stop), seed 7."""
    store = IdentityStore.read(identities)
    refs = {"identity": store.identity, "w": store.w, "embedding": store.embedding}
    directions = None if covariates is None else disco_directions(covariates, params, 32)
    return disperse(embedder, params, refs, start, stop, 7, directions, **kwargs)


def _arrays(result: Variations) -> tuple[np.ndarray, ...]:
    return result.w.numpy(), result.embeddings.numpy()


# ------------------------------------------------------------------------------ params


def test_params_defaults_and_config():
    p = VariationParams(algorithm="dispersion")
    assert (p.variations, p.iterations, p.sigma, p.k_e, p.k_w, p.r_w) == (64, 20, 0.2, 20, 1, 12)
    assert (p.k_g, p.eta, p.mu, p.timestep, p.batch_size, p.group_size) == (
        1,
        0.05,
        1,
        0.05,
        256,
        4,
    )
    assert VariationParams.from_config({"algorithm": "disco", "k_e": 10}).k_e == 10.0
    with pytest.raises(UserError, match="unknown key 'sigma0'"):
        VariationParams.from_config({"algorithm": "disco", "sigma0": 0.1})
    with pytest.raises(UserError, match="variations.algorithm: expected one of"):
        VariationParams(algorithm="langevin")
    with pytest.raises(UserError, match="variations.variations: expected a value >= 1, got 0"):
        VariationParams(algorithm="disco", variations=0)
    with pytest.raises(UserError, match="config variations.d.timestep: expected a value other"):
        VariationParams.from_config({"algorithm": "disco", "timestep": 0}, key="variations.d")
    with pytest.raises(UserError, match=">= 2 with an adaptive"):
        VariationParams(algorithm="disco", variations=1, timestep=-0.1)


def test_shard_range_is_contiguous_balanced_and_aligned():
    for n, shards, align in [(10, 3, 1), (10, 3, 4), (5, 7, 1), (1000, 8, 4)]:
        ranges = [shard_range(n, shards, k, align) for k in range(shards)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(start % align == 0 for start, _ in ranges)
        sizes = [stop - start for start, stop in ranges]
        assert max(sizes) - min(sizes) <= align
    with pytest.raises(UserError):
        shard_range(10, 3, 3)


def test_seed_changes_the_draws():
    ids = torch.arange(3)
    assert not torch.equal(start_noise(0, ids, 4, 8)[0], start_noise(1, ids, 4, 8)[0])
    assert torch.equal(
        iteration_noise(0, ids, 2, 4, 8)[1], iteration_noise(0, ids[1:2], 2, 4, 8)[0]
    )


# ------------------------------------------------------------------------------ physics


def _state(identities: Path, params: VariationParams, seed: int = 3):
    store = IdentityStore.read(identities)
    ids = torch.from_numpy(store.identity)
    w_ref, e_ref = torch.from_numpy(store.w), torch.from_numpy(store.embedding)
    xi, _ = start_noise(seed, ids, params.variations, w_ref.shape[1])
    return ids, start_latents(w_ref, xi, params.sigma), e_ref


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_forces_do_not_depend_on_the_batch_size(embedder64, identities):
    _, w, e_ref = _state(identities, PARAMS)
    w, e_ref = w.double(), e_ref.double()
    one_pass = dispersion_forces(embedder64, dataclasses.replace(PARAMS, batch_size=64), w, e_ref)
    chunked = dispersion_forces(embedder64, dataclasses.replace(PARAMS, batch_size=3), w, e_ref)
    assert PARAMS.variations > 3
    for name in ("embedding", "repulsion", "pull", "embeddings"):  # float64: ~1e-14 seen
        assert _rel(getattr(chunked, name), getattr(one_pass, name)) < 1e-12, name
    # Every variation has its own embedding force (the reference broadcast the first row).
    assert not torch.allclose(chunked.embedding[:, 0], chunked.embedding[:, 1])


@pytest.mark.parametrize("timestep", [0.05, -0.3])
def test_batched_step_equals_reference(embedder64, identities, timestep):
    params = dataclasses.replace(PARAMS, timestep=timestep, batch_size=5)
    ids, w, e_ref = _state(identities, params)
    w, e_ref = w.double(), e_ref.double()
    w_fast, w_ref = w, w.clone()
    for it in range(2):
        xi = iteration_noise(3, ids, it, params.variations, w.shape[-1]).double()
        w_fast, st_fast = dispersion_step(embedder64, params, w_fast, e_ref, xi)
        w_ref, st_ref = dispersion_step(embedder64, params, w_ref, e_ref, xi, impl="ref")
        # float64: ~3e-14 seen; float32 latent distances in the reference gave ~1e-8.
        assert _rel(w_fast - w, w_ref - w) < 1e-12
        for name in st_ref:
            torch.testing.assert_close(st_fast[name], st_ref[name], rtol=1e-12, atol=1e-14)


def test_reference_distances_keep_float64(embedder64, identities):
    """The reference's latent distances are computed in the dtype of the latents."""
    _, w, e_ref = _state(identities, PARAMS)
    w, e_ref = w.double(), e_ref.double()
    ref = dispersion_forces_ref(embedder64, PARAMS, w[0], e_ref[0])
    exact = torch.cdist(w[0], w[0], compute_mode="donot_use_mm_for_euclid_dist")
    assert ref.distances.dtype == torch.float64
    torch.testing.assert_close(ref.distances, exact, rtol=1e-14, atol=1e-14)


def test_dispersion_spreads_latents_but_keeps_the_identity(embedder, identities):
    params = dataclasses.replace(PARAMS, iterations=8)
    result = _run(embedder, identities, params)
    stats = result.stats
    assert list(stats.columns) == list(VARIATION_COLUMNS) and len(stats) == params.iterations + 1
    first, last = stats.iloc[0], stats.iloc[-1]
    assert last.latent_spread > 1.1 * first.latent_spread
    assert stats.angle_mean.max() < 0.5 and last.angle_mean < first.angle_mean
    np.testing.assert_allclose(stats.dt.iloc[:-1], params.timestep, rtol=1e-6)
    w, e = _arrays(result)
    assert w.shape == (N_IDS, params.variations, 32)
    with torch.no_grad():  # the embeddings are those of the final latents
        again = embedder(torch.from_numpy(w[1]))
    assert _rel(again, torch.from_numpy(e[1])) < 1e-5


def test_disco_covers_more_of_the_world_than_dispersion(embedder, identities, covariates, world):
    # Every latent direction of the world moves pose, light and expression, so the paper's
    # sigma = 0.2 alone already spans most of the world's range; start closer, repel less.
    params = dataclasses.replace(PARAMS, iterations=4, sigma=0.05, r_w=0.5)
    disco = dataclasses.replace(params, algorithm="disco")

    def spread(result: Variations) -> dict[str, float]:
        truth = world.nuisance_params(result.w.reshape(-1, result.w.shape[-1]))
        out = {}
        for name in ("yaw", "light_azimuth", "expression"):
            x = truth[name].reshape(N_IDS, params.variations, -1)
            out[name] = float(x.std(dim=1).mean())  # over variations, averaged per identity
        return out

    a = spread(_run(embedder, identities, params))
    b = spread(_run(embedder, identities, disco, covariates=covariates))
    for name in a:
        assert b[name] > 1.3 * a[name], (name, a, b)  # 1.7x, 2.7x, 2.7x


# ------------------------------------------------------------------------------ determinism


def test_one_shard_equals_three_shards(embedder, identities):
    whole = _arrays(_run(embedder, identities))
    parts = []
    for k in range(3):
        start, stop = shard_range(N_IDS, 3, k)  # not aligned to groups of 2: extras computed
        parts.append(_arrays(_run(embedder, identities, start=start, stop=stop)))
    for x, y in zip(whole, (np.concatenate(p) for p in zip(*parts))):
        assert x.tobytes() == y.tobytes()


def test_resume_equals_uninterrupted(embedder, identities, tmp_path, caplog):
    plain = _run(embedder, identities)
    ckpt = tmp_path / "ckpt.h5"

    def kill_after(n: int):
        calls = []

        def abort() -> bool:
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt  # a killed job: only the periodic checkpoint survives
            return False

        return abort

    with pytest.raises(KeyboardInterrupt):
        _run(embedder, identities, checkpoint=ckpt, abort_fn=kill_after(3))
    assert ckpt.exists()
    with caplog.at_level(logging.INFO, logger="brownface"):
        resumed = _run(embedder, identities, checkpoint=ckpt)
    assert "at iteration 2" in caplog.text
    for x, y in zip(_arrays(plain), _arrays(resumed)):
        assert x.tobytes() == y.tobytes()
    pd.testing.assert_frame_equal(
        plain.stats.drop(columns="wall_time"), resumed.stats.drop(columns="wall_time")
    )
    # The final state stays in the checkpoint: a rerun recomputes no iteration.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="brownface"):
        again = _run(embedder, identities, checkpoint=ckpt)
    assert f"at iteration {PARAMS.iterations}" in caplog.text
    assert _arrays(again)[0].tobytes() == _arrays(plain)[0].tobytes()

    # A graceful abort checkpoints where it stops; a resume with other params starts over.
    fresh = tmp_path / "fresh.h5"
    assert _run(embedder, identities, checkpoint=fresh, abort_fn=lambda: True) is None
    assert fresh.exists()
    other = dataclasses.replace(PARAMS, sigma=0.1)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        changed = _run(embedder, identities, other, checkpoint=fresh)
    assert "starting over" in caplog.text
    assert not np.array_equal(_arrays(changed)[0], _arrays(plain)[0])


# ------------------------------------------------------------------------------ the stage


def _stage(fr, identities, tmp_path, shard=0, shards=1, params=PARAMS, covariates=None):
    out = tmp_path / f"shard{shard:03d}.h5"
    sample_variations(
        WORLD_SPEC,
        fr,
        params,
        dataset="test",
        seed=7,
        shard=shard,
        shards=shards,
        identities=identities,
        covariates=covariates,
        device="cpu",
        out=out,
        stats=tmp_path / f"stats{shard:03d}.csv",
        checkpoint=tmp_path / "checkpoints" / out.name,
    )
    return out


def test_stage_writes_references_and_merges_shards(embedder, identities, tmp_path):
    fr = small_fr_file(tmp_path / "fr.pt")
    one = _stage(fr, identities, tmp_path / "one")
    store = VariationStore.read(one)
    ref = IdentityStore.read(identities)
    assert store.w.shape == (N_IDS, PARAMS.variations + 1, 32)
    np.testing.assert_array_equal(store.w[:, 0], ref.w)  # variation 0 is the reference
    np.testing.assert_array_equal(store.embedding[:, 0], ref.embedding)
    direct = _arrays(_run(embedder, identities))
    assert store.w[:, 1:].tobytes() == direct[0].tobytes()
    assert store.provenance["shard"] == {"index": 0, "count": 1, "start": 0, "stop": N_IDS}
    assert store.provenance["generator"]["truncation_psi"] == 0.7  # not None: spec as given
    assert (tmp_path / "one" / "checkpoints" / "shard000.h5").exists()  # kept after the job

    parts = [_stage(fr, identities, tmp_path / "three", k, 3) for k in range(3)]
    merge_variations([str(p) for p in reversed(parts)], str(identities), tmp_path / "m3.h5")
    merge_variations([str(one)], str(identities), tmp_path / "m1.h5")
    assert (tmp_path / "m1.h5").read_bytes() == (tmp_path / "m3.h5").read_bytes()


# ------------------------------------------------------------------------------ errors


def test_stage_errors_name_the_file(embedder, identities, world, tmp_path):
    fr = small_fr_file(tmp_path / "fr.pt")
    rng = np.random.default_rng(0)
    dirs = {}
    for name in ("pose", "illumination", "smile"):
        n = rng.normal(size=world.w_dim)
        dirs[name] = n / np.linalg.norm(n)
    w = rng.normal(size=(100, world.w_dim))
    path = tmp_path / "partial.h5"
    _covariate_store(dirs, w, np.zeros(world.w_dim)).write(path)
    disco = dataclasses.replace(PARAMS, algorithm="disco")
    with pytest.raises(UserError, match=r"partial\.h5.*missing scream, disgust, squint, surprise"):
        _stage(fr, identities, tmp_path, params=disco, covariates=path)
    with pytest.raises(UserError, match="covariates"):
        _stage(fr, identities, tmp_path, params=disco)
    other = IdentityStore.read(identities)
    other.embedding = other.embedding[:, :7]
    other.write(tmp_path / "other.h5")
    with pytest.raises(UserError, match=r"other\.h5: embeddings have 7 dimensions, the FR"):
        _stage(fr, tmp_path / "other.h5", tmp_path)
    with pytest.raises(ValueError, match=r"outside"):
        _run(embedder, identities, start=3, stop=9)
