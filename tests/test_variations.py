"""Dispersion and DisCo on the demo world: physics, determinism, sharding, resume, errors."""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from worldkit import small_embedder

from brownface.errors import UserError
from brownface.sampling.dispersion import (
    dispersion_forces,
    dispersion_step,
    iteration_noise,
    start_latents,
    start_noise,
)
from brownface.sampling.embedder import LatentEmbedder
from brownface.sampling.variations import (
    STAT_COLUMNS,
    VariationParams,
    sample_variations,
    shard_range,
)
from brownface.store import CovariateStore, IdentityStore, VariationStore, merge_shards
from brownface.world.generator import WorldGenerator
from brownface.world.renderer import EXPRESSIONS

N_IDS = 5
# The world's latents are 32-d with ||w - w_avg|| ~ 3, so the paper's r_w = 12 (for 512-d
# StyleGAN latents) would blow the variations apart; everything else is the paper's.
PARAMS = VariationParams(variations=8, iterations=5, r_w=2.0, batch_size=16, checkpoint_every=2)


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


def _run(embedder, identities, out, params=PARAMS, start=0, stop=N_IDS, **kwargs) -> Path:
    sample_variations(embedder, params, identities, 7, out, start, stop, **kwargs)
    return out


def _arrays(path: Path) -> tuple[np.ndarray, ...]:
    s = VariationStore.read(path)
    return s.identity, s.w, s.embedding


# ------------------------------------------------------------------------------ params


def test_params_defaults_and_config():
    p = VariationParams()
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
        VariationParams.from_config({"sigma0": 0.1})
    with pytest.raises(UserError, match="variations.algorithm"):
        VariationParams(algorithm="langevin")
    with pytest.raises(UserError, match="variations.variations"):
        VariationParams(variations=0)


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
    for name in ("embedding", "repulsion", "pull", "embeddings"):
        assert _rel(getattr(chunked, name), getattr(one_pass, name)) < 1e-5, name
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
        assert _rel(w_fast - w, w_ref - w) < 1e-5
        for name in st_ref:
            assert torch.allclose(st_fast[name], st_ref[name], rtol=1e-4, atol=1e-6), name


def test_dispersion_spreads_latents_but_keeps_the_identity(embedder, identities, tmp_path):
    params = dataclasses.replace(PARAMS, iterations=8)
    _run(embedder, identities, tmp_path / "v.h5", params, stats_out=tmp_path / "stats.csv")
    stats = pd.read_csv(tmp_path / "stats.csv")
    assert list(stats.columns) == list(STAT_COLUMNS) and len(stats) == params.iterations + 1
    first, last = stats.iloc[0], stats.iloc[-1]
    assert last.latent_spread > 1.1 * first.latent_spread
    assert stats.angle_mean.max() < 0.5 and last.angle_mean < first.angle_mean
    np.testing.assert_allclose(stats.dt.iloc[:-1], params.timestep, rtol=1e-6)
    identity, w, e = _arrays(tmp_path / "v.h5")
    ref = IdentityStore.read(identities)
    assert w.shape == (N_IDS, params.variations + 1, ref.w.shape[1])
    np.testing.assert_array_equal(w[:, 0], ref.w)  # variation 0 is the reference
    np.testing.assert_array_equal(e[:, 0], ref.embedding)
    with torch.no_grad():  # the stored embeddings are those of the final latents
        again = embedder(torch.from_numpy(w[1, 1:]))
    assert _rel(again, torch.from_numpy(e[1, 1:])) < 1e-5


def test_disco_covers_more_of_the_world_than_dispersion(
    embedder, identities, covariates, world, tmp_path
):
    # Every latent direction of the world moves pose, light and expression, so the paper's
    # sigma = 0.2 alone already spans most of the world's range; start closer, repel less.
    params = dataclasses.replace(PARAMS, iterations=4, sigma=0.05, r_w=0.5)
    disco = dataclasses.replace(params, algorithm="disco")
    _run(embedder, identities, tmp_path / "disp.h5", params)
    _run(embedder, identities, tmp_path / "disco.h5", disco, covariates_path=covariates)

    def spread(path: Path) -> dict[str, float]:
        w = torch.from_numpy(_arrays(path)[1][:, 1:])
        truth = world.nuisance_params(w.reshape(-1, w.shape[-1]))
        out = {}
        for name in ("yaw", "light_azimuth", "expression"):
            x = truth[name].reshape(N_IDS, params.variations, -1)
            out[name] = float(x.std(dim=1).mean())  # over variations, averaged per identity
        return out

    a, b = spread(tmp_path / "disp.h5"), spread(tmp_path / "disco.h5")
    for name in a:
        assert b[name] > 1.3 * a[name], (name, a, b)  # 1.7x, 2.7x, 2.7x


# ------------------------------------------------------------------------------ determinism


def test_one_shard_equals_three_shards(embedder, identities, tmp_path):
    whole = _run(embedder, identities, tmp_path / "whole.h5")
    parts = []
    for k in range(3):
        start, stop = shard_range(N_IDS, 3, k)  # not aligned to groups of 2: extras computed
        parts.append(_run(embedder, identities, tmp_path / f"s{k}.h5", start=start, stop=stop))
    merged = merge_shards(parts, tmp_path / "merged.h5", expected=N_IDS)
    for x, y in zip(_arrays(whole), _arrays(merged)):
        np.testing.assert_array_equal(x, y)
    one = merge_shards([whole], tmp_path / "one.h5", expected=N_IDS)
    with h5py.File(one) as f, h5py.File(merged) as g:
        for name in ("w", "embedding"):
            assert f[name][()].tobytes() == g[name][()].tobytes()


def test_resume_equals_uninterrupted(embedder, identities, tmp_path, caplog):
    plain = _run(embedder, identities, tmp_path / "plain.h5", stats_out=tmp_path / "plain.csv")
    ckpt = tmp_path / "ckpt.h5"

    def kill_after(n: int):
        calls = []

        def abort() -> bool:
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt  # a killed job: only the periodic checkpoint survives
            return False

        return abort

    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        _run(embedder, identities, out, checkpoint=ckpt, abort_fn=kill_after(3))
    assert ckpt.exists() and not out.exists()
    _run(embedder, identities, out, checkpoint=ckpt, stats_out=tmp_path / "resumed.csv")
    assert out.read_bytes() == plain.read_bytes() and not ckpt.exists()
    a, b = (
        pd.read_csv(tmp_path / f"{n}.csv").drop(columns="wall_time") for n in ("plain", "resumed")
    )
    pd.testing.assert_frame_equal(a, b)

    # A graceful abort checkpoints where it stops; a resume with other params starts over.
    _run(embedder, identities, out, checkpoint=ckpt, abort_fn=lambda: True)
    assert ckpt.exists()
    other = dataclasses.replace(PARAMS, sigma=0.1)
    with caplog.at_level(logging.WARNING):
        _run(embedder, identities, out, other, checkpoint=ckpt)
    assert "starting over" in caplog.text and not ckpt.exists()
    assert not np.array_equal(_arrays(out)[1], _arrays(plain)[1])


# ------------------------------------------------------------------------------ errors


def test_missing_covariate_directions(embedder, identities, world, tmp_path):
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
        _run(embedder, identities, tmp_path / "v.h5", disco, covariates_path=path)
    with pytest.raises(UserError, match="covariates"):
        _run(embedder, identities, tmp_path / "v.h5", disco)


def test_identity_range_outside_the_store(embedder, identities, tmp_path):
    with pytest.raises(UserError, match=r"identities\.h5: identity range \[3, 9\)"):
        _run(embedder, identities, tmp_path / "v.h5", start=3, stop=9)
    with pytest.raises(UserError, match="outside"):
        _run(embedder, identities, tmp_path / "v.h5", start=-1, stop=2)
