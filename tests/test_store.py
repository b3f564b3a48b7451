"""Tests of the HDF5 stores: round trips, determinism, refusals, merging, checkpoints."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import brownface
from brownface.errors import UserError
from brownface.store import (
    CovariateStore,
    EmbeddingStore,
    IdentityStore,
    ProjectionStore,
    StoreError,
    VariationStore,
    atomic_path,
    checkpoint_path,
    clear_accepted,
    load_checkpoint,
    merge_shards,
    open_store,
    read_any,
    read_variations,
    restore_rng,
    rng_state,
    run_key,
    save_checkpoint,
    shard_provenance,
    summarize,
)

PROV = {"config": {"n": 10}, "generator": {"sha256": "ab" * 32}, "seed": 7}


def identities(n: int = 10, w_dim: int = 8, e_dim: int = 4, seed: int = 0) -> IdentityStore:
    rng = np.random.default_rng(seed)
    return IdentityStore(
        identity=np.arange(n),
        w=rng.standard_normal((n, w_dim)).astype(np.float32),
        embedding=rng.standard_normal((n, e_dim)).astype(np.float32),
        provenance=dict(PROV),
        attrs={"w_dim": w_dim},
    )


def variations(n: int = 9, v: int = 3, w_dim: int = 8, e_dim: int = 4) -> VariationStore:
    rng = np.random.default_rng(1)
    return VariationStore(
        identity=np.arange(n),
        w=rng.standard_normal((n, v, w_dim)).astype(np.float32),
        embedding=rng.standard_normal((n, v, e_dim)).astype(np.float32),
        provenance=dict(PROV),
    )


def projections(m: int = 5) -> ProjectionStore:
    rng = np.random.default_rng(2)
    ints = {k: np.arange(m) + i for i, k in enumerate(("subject", "session", "recording", "flash"))}
    return ProjectionStore(
        w=rng.standard_normal((m, 8)).astype(np.float32),
        loss=rng.random(m).astype(np.float32),
        path=np.array([f"img/ü{i}.png" for i in range(m)]),
        camera=np.array(["c1", "c2", "c1", "c3", "c1"][:m]),
        expression=np.array(["smile", "neutral", "", "smile", "x"][:m]),
        provenance=dict(PROV),
        **ints,
    )


def covariates(d: int = 3, w_dim: int = 8) -> CovariateStore:
    rng = np.random.default_rng(3)
    direction = rng.standard_normal((d, w_dim))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    stats = {k: rng.random(d).astype(np.float32) for k in ("scale", "pos_mean", "pos_std")}
    stats |= {k: rng.random(d).astype(np.float32) for k in ("neg_mean", "neg_std", "accuracy")}
    return CovariateStore(
        name=np.array(["yaw", "smile", "age"][:d]),
        direction=direction.astype(np.float32),
        n_pos=np.arange(d) + 10,
        n_neg=np.arange(d) + 20,
        provenance=dict(PROV),
        **stats,
    )


def embeddings(m: int = 9, e_dim: int = 4) -> EmbeddingStore:
    rng = np.random.default_rng(4)
    e = rng.standard_normal((m, e_dim))
    return EmbeddingStore(
        label=np.array(["b", "a", "b", "c", "a", "b", "d", "c", "a"][:m]),
        path=np.array([f"ffhq/{i:05d}.png" for i in range(m)]),
        embedding=(e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32),
        provenance=dict(PROV),
    )


MAKERS = {"identities": identities, "variations": variations}
MAKERS |= {"projections": projections, "covariates": covariates, "embeddings": embeddings}


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    for name, arr in a.arrays().items():
        other = getattr(b, name)
        np.testing.assert_array_equal(np.asarray(arr), other)
        assert other.dtype.kind == np.asarray(arr).dtype.kind or other.dtype.kind == "U"


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_round_trip_every_kind(tmp_path: Path, kind: str) -> None:
    store = MAKERS[kind]()
    path = store.write(tmp_path / "sub" / f"{kind}.h5")
    back = type(store).read(path)
    assert_same(store, back)
    assert back.provenance == {**PROV, "package_version": brownface.__version__}
    assert back.attrs == store.attrs
    assert open_store(path) == (kind, 1)
    assert isinstance(read_any(path), type(store))
    with h5py.File(path) as f:
        assert f.attrs["format"] == f"brownface/{kind}"
    assert not list(path.parent.glob(".*tmp*"))


def test_rewrite_is_byte_identical(tmp_path: Path) -> None:
    for kind, make in MAKERS.items():
        a = make().write(tmp_path / f"a_{kind}.h5")
        if kind == "identities":
            time.sleep(1.1)  # would expose any timestamp in the file
        b = make().write(tmp_path / f"b_{kind}.h5")
        assert a.read_bytes() == b.read_bytes(), kind


def test_strings_and_dtypes_read_back(tmp_path: Path) -> None:
    back = ProjectionStore.read(projections().write(tmp_path / "p.h5"))
    assert back.path[0] == "img/ü0.png" and back.expression[2] == ""
    assert back.subject.dtype == np.int64 and back.w.dtype == np.float32


def test_wrong_kind_is_refused(tmp_path: Path) -> None:
    path = variations().write(tmp_path / "v.h5")
    with pytest.raises(
        UserError, match="expected a brownface/identities store, found 'brownface/variations'"
    ):
        IdentityStore.read(path)


def test_missing_format_attr_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["w"] = np.zeros(3)
    with pytest.raises(StoreError, match="found no format attribute"):
        IdentityStore.read(path)
    with pytest.raises(StoreError, match="found no format attribute"):
        summarize(path)


def test_newer_version_is_refused(tmp_path: Path) -> None:
    path = identities().write(tmp_path / "i.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 2
    msg = r"brownface/identities version 2 is newer than this brownface supports \(1\); upgrade"
    with pytest.raises(StoreError, match=msg):
        IdentityStore.read(path)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = variations().write(tmp_path / "v.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="not a readable HDF5 store") as err:
        VariationStore.read(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(StoreError, match="not a readable HDF5 store"):
        summarize(path)


def test_random_bytes_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.h5"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(StoreError, match="not a readable HDF5 store"):
        open_store(path)
    with pytest.raises(StoreError, match="no such store file"):
        open_store(tmp_path / "absent.h5")


def test_missing_dataset_and_inconsistent_shapes_are_refused(tmp_path: Path) -> None:
    path = identities().write(tmp_path / "i.h5")
    with h5py.File(path, "r+") as f:
        del f["embedding"]
        f["embedding"] = np.zeros((9, 4), dtype=np.float32)
    with pytest.raises(StoreError, match=r"embedding must have shape \[N, e_dim\] = \[10, 4\]"):
        IdentityStore.read(path)
    with h5py.File(path, "r+") as f:
        del f["embedding"]
    with pytest.raises(StoreError, match="has no dataset 'embedding'"):
        IdentityStore.read(path)


def test_wrong_shapes_and_dtypes_on_write(tmp_path: Path) -> None:
    store = identities(w_dim=32)
    store.w = store.w[:, :31]
    msg = r"i\.h5: w must have shape \[N, w_dim\] = \[10, 32\], got \[10, 31\]"
    with pytest.raises(StoreError, match=msg):
        store.write(tmp_path / "i.h5")
    store = variations()
    store.embedding = store.embedding[:, :2]
    with pytest.raises(
        StoreError, match=r"embedding must have shape \[N, V, e_dim\] = \[9, 3, 4\]"
    ):
        store.write(tmp_path / "v.h5")
    store = identities()
    store.identity = store.identity.astype(np.float64)
    with pytest.raises(StoreError, match="identity must be int64, got float64"):
        store.write(tmp_path / "i.h5")
    assert not list(tmp_path.iterdir())


def test_non_unit_directions_are_refused(tmp_path: Path) -> None:
    store = covariates()
    store.direction[1] *= 2
    with pytest.raises(StoreError, match=r"direction 1 \('smile'\) has norm 2"):
        store.write(tmp_path / "c.h5")
    path = covariates().write(tmp_path / "c.h5")
    with h5py.File(path, "r+") as f:
        f["direction"][0] *= 0.5
    with pytest.raises(StoreError, match="direction 0 .* expected unit-norm"):
        CovariateStore.read(path)


def test_atomic_path_leaves_nothing_on_error(tmp_path: Path) -> None:
    final = tmp_path / "deep" / "out.csv"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".out.csv.tmp-")
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not final.exists() and not list(final.parent.iterdir())
    with atomic_path(final) as tmp:
        tmp.write_text("done")
    assert final.read_text() == "done" and list(final.parent.iterdir()) == [final]


def test_store_write_failure_leaves_no_file(tmp_path: Path) -> None:
    store = identities()
    store.provenance = {"bad": object()}
    with pytest.raises(TypeError):
        store.write(tmp_path / "i.h5")
    assert not list(tmp_path.iterdir())


def split(store, bounds: list[int], tmp_path: Path):
    """Shards of rows [bounds[k], bounds[k + 1]), as the sharded stages write them."""
    paths = []
    count = len(bounds) - 1
    for k in range(count):
        rows = slice(bounds[k], bounds[k + 1])
        shard = type(store)(
            **{name: arr[rows] for name, arr in store.arrays().items()},
            provenance={**PROV, "shard": shard_provenance(k, count, bounds[k], bounds[k + 1])},
            attrs=dict(store.attrs),
        )
        paths.append(shard.write(tmp_path / f"shard{k}.h5"))
    return paths


@pytest.mark.parametrize("make", [identities, variations, embeddings])
def test_merge_equals_direct_write(tmp_path: Path, make) -> None:
    store = make()
    n = len(store)
    paths = split(store, [0, 3, 6, n], tmp_path)
    merged = merge_shards(paths[::-1], tmp_path / "merged.h5", expected=n)  # any order
    direct = store.write(tmp_path / "direct.h5")
    assert merged.read_bytes() == direct.read_bytes()
    assert not list(tmp_path.glob(".*tmp*"))


def test_merge_refuses_overlap_gaps_and_missing_shards(tmp_path: Path) -> None:
    def refused(paths, match, **kwargs):
        with pytest.raises(StoreError, match=match):
            merge_shards(paths, tmp_path / "m.h5", **kwargs)
        assert not (tmp_path / "m.h5").exists()

    store = variations()
    refused(split(store, [0, 5, 9], tmp_path)[1:], "shard 0 of 2 is missing")
    paths = split(store, [0, 5, 9], tmp_path)
    refused(paths, "expected 12 rows, but rows 9..11 are in no shard", expected=12)
    refused(paths, "expected 8 rows, but they hold 9 rows", expected=8)

    def whole_as(name: str, start: int, stop: int) -> Path:
        """All 9 rows, claiming to be shard 1 of 2 with rows [start, stop)."""
        prov = {**PROV, "shard": shard_provenance(1, 2, start, stop)}
        return VariationStore(**store.arrays(), provenance=prov).write(tmp_path / name)

    refused([paths[0], whole_as("overlap.h5", 4, 13)], "starts at row 4 and overlaps")
    refused([paths[0], whole_as("gap.h5", 6, 15)], "leaves rows 5..5 in no shard")
    dup = VariationStore(
        identity=store.identity[4:9], w=store.w[4:9], embedding=store.embedding[4:9],
        provenance={**PROV, "shard": shard_provenance(1, 2, 5, 10)},
    )  # fmt: skip
    refused([paths[0], dup.write(tmp_path / "dup.h5")], "both contain identity 4")
    plain = store.write(tmp_path / "plain.h5")
    refused([plain], "not a shard")
    refused([whole_as("short.h5", 0, 3)], "holds 9 rows, but its shard range is rows 0..2")


def test_merge_refuses_mismatched_shards(tmp_path: Path) -> None:
    def shard(name, store, k, start, prov=PROV):
        store.identity = store.identity + start
        store.provenance = {**prov, "shard": shard_provenance(k, 2, start, start + len(store))}
        return store.write(tmp_path / name)

    a = shard("a.h5", variations(n=3, v=3), 0, 0)
    b = shard("b.h5", variations(n=6, v=4), 1, 3)
    with pytest.raises(StoreError, match="b.h5: V = 4, but .*a.h5 has V = 3"):
        merge_shards([a, b], tmp_path / "m.h5")
    c = shard("c.h5", variations(n=6), 1, 3, {**PROV, "seed": 8})
    with pytest.raises(StoreError, match="provenance key 'seed' differs from"):
        merge_shards([a, c], tmp_path / "m.h5")
    cov = CovariateStore(
        name=np.array(["pose"]), direction=np.ones((1, 4), np.float32) / 2,
        **{k: np.ones(1, np.float32) for k in ("scale", "pos_mean", "pos_std", "neg_mean", "neg_std", "accuracy")},
        n_pos=np.ones(1, np.int64), n_neg=np.ones(1, np.int64),
    )  # fmt: skip
    with pytest.raises(StoreError, match="merges identities, variations, projections"):
        merge_shards([cov.write(tmp_path / "cov.h5")], tmp_path / "m.h5")


def test_read_variations_partial(tmp_path: Path) -> None:
    store = variations()
    path = store.write(tmp_path / "v.h5")
    part = read_variations(path, 2, 5)
    np.testing.assert_array_equal(part.identity, [2, 3, 4])
    np.testing.assert_array_equal(part.w, store.w[2:5])
    np.testing.assert_array_equal(part.embedding, store.embedding[2:5])
    assert len(read_variations(path, 20, 30)) == 0
    with pytest.raises(StoreError, match="expected a brownface/variations store"):
        read_variations(identities().write(tmp_path / "i.h5"), 0, 1)


def test_checkpoint_round_trip_resumes_rng(tmp_path: Path) -> None:
    tgen, ngen = torch.Generator().manual_seed(3), np.random.default_rng(4)
    torch.randn(5, generator=tgen), ngen.standard_normal(5)
    state = rng_state(torch_gen=tgen, np_gen=ngen)
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "mask": np.array([True, False])}
    path = save_checkpoint(
        tmp_path / "ck.h5",
        arrays=arrays,
        iteration=41,
        rng={**state, "extra": b"\x00\x01raw"},
        meta={"loop": "langevin", "step": 0.1},
    )
    expected_t, expected_n = torch.randn(4, generator=tgen), ngen.standard_normal(4)
    ck = load_checkpoint(path, loop="langevin")
    assert ck.iteration == 41 and ck.meta == {"loop": "langevin", "step": 0.1}
    assert ck.rng["extra"] == b"\x00\x01raw"
    for name, arr in arrays.items():
        np.testing.assert_array_equal(ck.arrays[name], arr)
        assert ck.arrays[name].dtype == arr.dtype
    tgen2, ngen2 = torch.Generator().manual_seed(99), np.random.default_rng(99)
    restore_rng(ck.rng, torch_gen=tgen2, np_gen=ngen2)
    assert torch.equal(torch.randn(4, generator=tgen2), expected_t)
    np.testing.assert_array_equal(ngen2.standard_normal(4), expected_n)
    with pytest.raises(
        StoreError, match="checkpoint is for loop 'langevin', expected 'dispersion'"
    ):
        load_checkpoint(path, loop="dispersion")
    with pytest.raises(StoreError, match="expected a brownface/checkpoint store"):
        load_checkpoint(identities().write(tmp_path / "i.h5"))
    again = save_checkpoint(
        tmp_path / "ck2.h5",
        arrays=arrays,
        iteration=41,
        rng={**state, "extra": b"\x00\x01raw"},
        meta={"loop": "langevin", "step": 0.1},
    )
    assert again.read_bytes() == path.read_bytes()


def test_summarize_mentions_kind_and_shapes(tmp_path: Path) -> None:
    text = summarize(variations().write(tmp_path / "v.h5"))
    assert "brownface/variations, version 1" in text
    assert "[9, 3, 8]" in text and "float32" in text and "items: 9 identities" in text
    assert '"seed": 7' in text and '"package_version"' in text
    ck = save_checkpoint(
        tmp_path / "ck.h5", arrays={"x": np.zeros((2, 5))}, iteration=3, rng={}, meta={}
    )
    text = summarize(ck)
    assert "brownface/checkpoint" in text and "iteration: 3" in text and "[2, 5]" in text
    text = summarize(projections().write(tmp_path / "p.h5"))
    assert "path" in text and "str" in text and "items: 5 images" in text


def test_checkpoints_are_cleared_once_their_outputs_are_accepted(tmp_path: Path) -> None:
    import os

    results = tmp_path / "results"

    def file(rel: str, mtime: float) -> Path:
        path = results / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
        os.utime(path, (mtime, mtime))
        return path

    assert checkpoint_path(str(results), str(results / "identities/a/identities.h5")) == str(
        results / "checkpoints/identities/a/identities.h5"
    )
    done = file("checkpoints/identities/a/identities.h5", 100)
    file("identities/a/identities.h5", 200)  # written after its checkpoint: accepted
    pending = file("checkpoints/identities/b/identities.h5", 100)  # no output: a killed job
    rerun = file("checkpoints/training/c/model.pt", 300)  # newer than an old output: running
    file("training/c/model.pt", 200)
    leftover = file("checkpoints/training/c/.model.pt.tmp-123", 100)  # a killed write
    assert clear_accepted(results) == sorted([done, leftover])
    assert pending.exists() and rerun.exists()
    assert not (results / "checkpoints/identities/a").exists()  # empty folders go too
    assert clear_accepted(tmp_path / "nothing") == []


def test_run_key_covers_params_context_and_array_bytes() -> None:
    from dataclasses import dataclass

    @dataclass
    class P:
        k: float = 1.0
        checkpoint_every: int = 10

    base = run_key(P(), [1], [np.zeros(3)])
    assert base == run_key(P(checkpoint_every=3), [1], [np.zeros(3)])  # when, not what
    assert base != run_key(P(k=2.0), [1], [np.zeros(3)])
    assert base != run_key(P(), [2], [np.zeros(3)])
    assert base != run_key(P(), [1], [np.ones(3)])


def test_embedding_identities_are_the_labels_with_normalised_means(tmp_path: Path) -> None:
    store = EmbeddingStore.read(embeddings().write(tmp_path / "e.h5"))
    labels, means = store.identity_means()
    assert labels.tolist() == ["b", "a", "c", "d"]  # order of first appearance
    for label, mean in zip(labels, means, strict=True):
        rows = store.embedding[store.label == label].astype(np.float64)
        expected = rows.sum(0) / np.linalg.norm(rows.sum(0))
        np.testing.assert_allclose(mean, expected, atol=1e-6)
    assert means.dtype == np.float32
    # Merged shards that split an identity's images give the same identities.
    merged = merge_shards(split(store, [0, 4, 9], tmp_path), tmp_path / "m.h5", expected=9)
    again = EmbeddingStore.read(merged).identity_means()
    assert again[0].tolist() == labels.tolist() and np.array_equal(again[1], means)


def test_non_unit_embeddings_are_refused(tmp_path: Path) -> None:
    store = embeddings()
    store.embedding[2] *= 1.5
    with pytest.raises(StoreError, match=r"embedding 2 \('ffhq/00002.png'\) has norm 1.5"):
        store.write(tmp_path / "e.h5")
