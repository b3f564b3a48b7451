"""Identity capacity: the greedy packing at ICT, the measures of a run, the world's truth."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from brownface.errors import UserError
from brownface.leakage.capacity import capacity_row, capacity_table, greedy_distinct
from brownface.report import figures
from brownface.store import IdentityStore
from brownface.world.generator import CAPTURE_WIDTH, WorldGenerator


def unit(n, d, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def brute_force_packing(e, ict):
    kept = []
    for i in range(e.shape[0]):
        if all(math.acos(max(-1.0, min(1.0, float(e[i] @ e[j])))) >= ict for j in kept):
            kept.append(i)
    return len(kept)


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_the_packing_is_the_greedy_one_whatever_the_blocks(block):
    for d, ict in itertools.product((3, 8), (0.6, 1.2)):
        e = unit(120, d, seed=d)
        assert greedy_distinct(e, ict, block=block) == brute_force_packing(e, ict)


def test_the_packing_counts_distinct_directions():
    """Five directions, each seen four times with tiny noise: five distinct identities."""
    centres = torch.eye(8, dtype=torch.float64)[:5]
    e = centres.repeat(4, 1) + 1e-3 * unit(20, 8, 1)
    assert greedy_distinct(e, ict=0.5) == 5
    assert greedy_distinct(e, ict=1e-6) == 20  # at (almost) no threshold every row counts


def store_of(w, e):
    n = len(w)
    return IdentityStore(
        identity=np.arange(n),
        w=np.asarray(w, np.float32),
        embedding=np.asarray(e / np.linalg.norm(e, axis=1, keepdims=True), np.float32),
    )


def test_the_world_truth_counts_repeated_training_people():
    g = WorldGenerator(seed=0, training_identities=5, training_share=0.5)
    z = torch.randn(400, 32, generator=torch.Generator().manual_seed(3))
    w = g.mapping(z, truncation_psi=0.7)
    person = g.training_identity(w).numpy()
    e = g.identity_params(w).double().numpy()  # the ideal FR
    row = capacity_row(store_of(w, e), ict=0.3, generator=g)
    own, drawn = int((person < 0).sum()), np.unique(person[person >= 0])
    assert row["true_distinct"] == own + drawn.size and drawn.size == 5
    shared = np.isin(person, [p for p in drawn if (person == p).sum() > 1])
    assert row["true_frac_repeated"] == pytest.approx(shared.mean()) and shared.any()
    # Under the ideal FR the packing merges the repeats of each training person (those well
    # inside its capture are that person exactly).
    cos = g._nearest_training(g._head(w)[:, :16])[0]
    inside = (person >= 0) & (cos > g.capture_cosine + 4 * CAPTURE_WIDTH).numpy()
    deep = capacity_row(store_of(w[inside], e[inside]), ict=0.3, generator=g)
    assert deep["distinct"] == deep["true_distinct"] == np.unique(person[inside]).size
    assert deep["frac_below_ict"] == deep["true_frac_repeated"] > 0.5
    plain = capacity_row(store_of(w, e), ict=0.3)
    assert math.isnan(plain["true_distinct"]) and plain["distinct"] == row["distinct"]


def test_the_table_and_its_figure(tmp_path):
    g = WorldGenerator(seed=0, training_identities=5, training_share=0.3)
    stores = {}
    for n in (40, 10, 20):
        z = torch.randn(n, 32, generator=torch.Generator().manual_seed(n))
        w = g.mapping(z, truncation_psi=0.7)
        stores[n] = store_of(w, g.identity_params(w).double().numpy()).write(tmp_path / f"{n}.h5")
    table = capacity_table(stores, ict=0.8, generator=g)
    assert table["n"].tolist() == [10, 20, 40] and table["distinct"].is_monotonic_increasing
    csv = tmp_path / "capacity.csv"
    table.to_csv(csv, index=False)
    for name in ("a.png", "b.png"):
        figures.capacity_figure(csv, tmp_path / name, ict_deg=45.8)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == tuple(round(x * figures.DPI) for x in figures.CAPACITY_SIZE)
    pd.DataFrame({"n": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match="bad.csv: capacity table has no column 'frac_below_ict'"):
        figures.capacity_figure(tmp_path / "bad.csv", tmp_path / "c.png", ict_deg=80)
