"""Report figures: PNGs of figsize x dpi pixels, the same bytes on a rerun, one clear error for
bad input. Inputs are tiny files in the stages' real formats."""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from brownface.errors import UserError
from brownface.report import figures
from brownface.report.figures import (
    angle_histograms,
    combine_shards,
    dataset_colours,
    read_train_log,
    roc_figure,
    sampling_stats_figure,
    training_curves,
)
from brownface.sampling.stats import (
    DRAW_COLUMNS,
    FORCE_COLUMNS,
    LANGEVIN_COLUMNS,
    VARIATION_COLUMNS,
    identity_set_stats,
    stats_table,
    variation_row,
    variation_stats,
)
from brownface.store import VariationStore
from brownface.train.loop import LOG_COLUMNS

DATASETS = ("langevin_disco", "random_dispersion")
ICT_RAD = 1.4


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# Inputs in the stages' formats.


def write_roc(path: Path, seed: int) -> Path:
    """Like ijb_eval.write_ijb_outputs: far ascending (> 0), tar, threshold."""
    far = np.geomspace(1e-6, 1.0, 40)
    tar = np.clip(0.6 + 0.4 * (np.log10(far) + 6) / 6 - 0.02 * seed, 0, 1)
    pd.DataFrame({"far": far, "tar": tar, "threshold": 1 - far}).to_csv(
        path, index=False, float_format="%.8g", lineterminator="\n"
    )
    return path


def write_variations(path: Path, seed: int, n: int = 6, v: int = 4) -> Path:
    g = torch.Generator().manual_seed(seed)
    e = unit(torch.randn(n, v, 8, generator=g))
    VariationStore(
        identity=np.arange(n, dtype=np.int64),
        w=torch.randn(n, v, 4, generator=g).numpy(),
        embedding=e.numpy(),
    ).write(path)
    return path


def write_identity_stats(path: Path, iterations: int, seed: int) -> Path:
    """A Langevin table (iterations rows) or, for iterations == 0, a random draw's one row."""
    g = torch.Generator().manual_seed(seed)
    w, w_avg = torch.randn(5, 4, generator=g).double(), torch.zeros(4, dtype=torch.float64)
    if iterations == 0:
        e = unit(torch.randn(5, 8, generator=g).double())
        row = dict(iteration=0, **identity_set_stats(w, e, w_avg, ICT_RAD, 4))
        table = stats_table([dict(row, candidates=5, wall_time=0.1)], DRAW_COLUMNS)
    else:
        rows = []
        for it in range(iterations):
            e = unit(torch.randn(5, 8, generator=g).double())
            stats = identity_set_stats(w, e, w_avg, ICT_RAD, 4)
            forces = dict.fromkeys(FORCE_COLUMNS, 0.5)
            rows.append(dict(iteration=it, **stats, **forces, dt=0.1, wall_time=0.01))
        table = stats_table(rows, LANGEVIN_COLUMNS)
    table.to_csv(path, index=False)  # as sampling.stages._write_stats
    return path


def write_variation_stats(path: Path, iterations: int, seed: int) -> Path:
    """A shard's table as disperse builds it: one row per iteration, then the final state."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for it in range(iterations + 1):
        theta = torch.rand(3, 4, generator=g)
        e = unit(torch.randn(3, 4, 8, generator=g))
        w = torch.randn(3, 4, 2, generator=g)
        st = variation_stats(theta, e, torch.cdist(w, w), w, torch.zeros(2))
        rows.append(variation_row(it, [st], slice(0, 3), 0.01))
    stats_table(rows, VARIATION_COLUMNS).to_csv(path, index=False)
    return path


def write_train_log(
    path: Path, epochs: int, steps_per_epoch: int, val: tuple[str, ...], scale: float = 1.0
) -> Path:
    """The rows Trainer.finish writes (log_every = 1): steps with their 0-based epoch, then
    after each epoch a row with the epochs done and only the accuracies."""
    history, step = [], 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            step += 1
            history.append(
                dict(step=step, epoch=epoch, loss=scale * 10 / step, lr=0.1, images_per_s=100.0)
            )
        accs = {n: {"accuracy": 0.5 + 0.1 * epoch / scale + 0.02 * i} for i, n in enumerate(val)}
        history.append({"epoch_end": epoch + 1, "step": step, "validation": accs})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*LOG_COLUMNS, *(f"val_{n}" for n in val)])
        for row in history:
            if "loss" in row:
                writer.writerow([row[c] for c in LOG_COLUMNS] + [""] * len(val))
            else:
                writer.writerow(
                    [row["step"], row["epoch_end"], "", "", ""]
                    + [row["validation"][n]["accuracy"] for n in val]
                )
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("inputs")
    return dict(
        roc={n: write_roc(d / f"{n}_roc.csv", i) for i, n in enumerate(DATASETS)},
        stores={n: write_variations(d / f"{n}.h5", i) for i, n in enumerate(DATASETS)},
        identities={
            "langevin": write_identity_stats(d / "langevin_stats.csv", 5, 0),
            "random": write_identity_stats(d / "random_stats.csv", 0, 1),
        },
        variations={
            n: [write_variation_stats(d / f"{n}_shard{s}.csv", 4, 10 * i + s) for s in range(2)]
            for i, n in enumerate(DATASETS)
        },
        logs={
            n: write_train_log(d / f"{n}_train_log.csv", 3, 2, ("lfw", "cfp_fp"), 1 + i)
            for i, n in enumerate(DATASETS)
        },
        leakage={
            c: {n: write_leakage(d / f"{c}_{n}.json", 10 * i + j) for i, n in enumerate(DATASETS)}
            for j, c in enumerate(("ffhq", "world_training"))
        },
    )


def write_leakage(path, seed: int):
    """A leakage measure as measure_leakage writes it (histogram of nearest angles)."""
    rng = np.random.default_rng(seed)
    counts, edges = np.histogram(rng.normal(55, 8, 200), bins=90, range=(0.0, 90.0))
    path.write_text(
        json.dumps(
            {
                "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
                "thresholds": {
                    "0.001": {"cosine": 0.5, "degrees": 60.0},
                    "0.0001": {"cosine": 0.6, "degrees": 53.1},
                },
                "leaked": {"0.001": 0.1, "0.0001": 0.05},
            }
        )
    )
    return path


DRAW = {
    "roc": (lambda i, out: roc_figure(i["roc"], out, title="IJB-C 1:1"), figures.ROC_SIZE),
    "angles": (
        lambda i, out: angle_histograms(i["stores"], out, ict_deg=80.2),
        figures.ANGLES_SIZE,
    ),
    "sampling": (
        lambda i, out: sampling_stats_figure(i["identities"], i["variations"], out, ict_deg=80.2),
        figures.SAMPLING_SIZE,
    ),
    "training": (lambda i, out: training_curves(i["logs"], out), figures.TRAINING_SIZE),
    "leakage": (
        lambda i, out: figures.leakage_histograms(i["leakage"], out),
        (2 * figures.LEAKAGE_PANEL[0], figures.LEAKAGE_PANEL[1]),
    ),
}


# ---------------------------------------------------------------------------------------------
# Figures.


@pytest.mark.parametrize("name", sorted(DRAW))
def test_a_figure_is_a_png_of_its_size_and_the_same_bytes_twice(inputs, tmp_path, name):
    draw, (width, height) = DRAW[name]
    first, second = tmp_path / "a" / f"{name}.png", tmp_path / f"{name}.png"
    draw(inputs, first)
    draw(inputs, second)
    with Image.open(first) as img:
        assert img.format == "PNG"
        assert img.size == (round(width * figures.DPI), round(height * figures.DPI))
        assert len(np.unique(np.asarray(img.convert("L")))) > 2  # something was drawn
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", f"{name}.png"]  # no temp left


def test_colours_follow_the_given_order_then_sorted_names():
    auto = dataset_colours(["b", "a"])
    assert list(auto) == ["a", "b"] and len(set(auto.values())) == 2
    ordered = dataset_colours(["a", "c"], order=["c", "b", "a"])
    assert list(ordered) == ["c", "a"]
    assert ordered["c"] == auto["a"] and ordered["a"] == dataset_colours(["x", "y", "a"])["y"]


def test_the_train_log_puts_loss_and_validation_on_one_epoch_axis(tmp_path):
    path = write_train_log(tmp_path / "train_log.csv", 2, 2, ("lfw",))
    loss, val = read_train_log(path)
    assert list(loss.index) == [1, 2] and list(val.index) == [1, 2]
    assert loss[1] == pytest.approx((10.0 + 5.0) / 2)
    assert list(val.columns) == ["lfw"] and val["lfw"].tolist() == pytest.approx([50.0, 60.0])


def test_a_train_log_without_validation_sets_has_no_accuracies(tmp_path):
    loss, val = read_train_log(write_train_log(tmp_path / "train_log.csv", 2, 3, ()))
    assert list(loss.index) == [1, 2] and val.empty


def test_shards_are_combined_by_their_mean_per_iteration(inputs):
    paths = inputs["variations"][DATASETS[0]]
    combined = combine_shards(DATASETS[0], paths)
    tables = [pd.read_csv(p) for p in paths]
    assert list(combined.index) == tables[0]["iteration"].tolist()
    want = (tables[0]["angle_mean"] + tables[1]["angle_mean"]) / 2
    assert combined["angle_mean"].to_numpy() == pytest.approx(want.to_numpy())


# ---------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
    "call",
    [
        lambda out: roc_figure({}, out, title="t"),
        lambda out: angle_histograms({}, out),
        lambda out: sampling_stats_figure({}, {"d": []}, out),
        lambda out: training_curves({}, out),
    ],
)
def test_an_empty_mapping_is_a_user_error(tmp_path, call):
    with pytest.raises(UserError, match="no inputs given"):
        call(tmp_path / "fig.png")
    assert not (tmp_path / "fig.png").exists()


def test_a_roc_without_tar_names_the_file(inputs, tmp_path):
    bad = tmp_path / "bad_roc.csv"
    pd.read_csv(inputs["roc"][DATASETS[0]]).drop(columns="tar").to_csv(bad, index=False)
    with pytest.raises(UserError, match=r"bad_roc\.csv.*no column 'tar'"):
        roc_figure({"x": bad}, tmp_path / "roc.png", title="t")
    assert not (tmp_path / "roc.png").exists()


def test_a_roc_that_is_no_csv_names_the_file(inputs, tmp_path):
    store = inputs["stores"][DATASETS[0]]  # HDF5, not CSV
    with pytest.raises(UserError, match=store.name):
        roc_figure({"x": store}, tmp_path / "roc.png", title="t")
    with pytest.raises(UserError, match="missing_roc.csv"):
        roc_figure({"x": tmp_path / "missing_roc.csv"}, tmp_path / "roc.png", title="t")


def test_a_roc_with_far_zero_is_a_user_error(tmp_path):
    bad = tmp_path / "zero_roc.csv"
    pd.DataFrame({"far": [0.0, 1.0], "tar": [0.1, 1.0], "threshold": [1, 0]}).to_csv(bad)
    with pytest.raises(UserError, match=r"zero_roc\.csv.*far > 0"):
        roc_figure({"x": bad}, tmp_path / "roc.png", title="t")


def test_a_store_that_is_not_a_variations_store_names_the_file(inputs, tmp_path):
    roc = inputs["roc"][DATASETS[0]]
    with pytest.raises(UserError, match=roc.name):
        angle_histograms({"x": roc}, tmp_path / "angles.png")


def test_stats_without_a_column_name_the_file(inputs, tmp_path):
    bad = tmp_path / "shard_stats.csv"
    shard = inputs["variations"][DATASETS[0]][0]
    pd.read_csv(shard).drop(columns="intra_angle_mean").to_csv(bad, index=False)
    with pytest.raises(UserError, match=r"shard_stats\.csv.*'intra_angle_mean'"):
        sampling_stats_figure(inputs["identities"], {"d": [bad]}, tmp_path / "s.png")
    bad_ids = tmp_path / "id_stats.csv"
    pd.read_csv(inputs["identities"]["langevin"]).drop(columns="frac_below_ict").to_csv(bad_ids)
    with pytest.raises(UserError, match=r"id_stats\.csv.*'frac_below_ict'"):
        sampling_stats_figure({"l": bad_ids}, inputs["variations"], tmp_path / "s.png")
    with pytest.raises(UserError, match="'d' has no shard"):
        sampling_stats_figure(inputs["identities"], {"d": []}, tmp_path / "s.png")


def test_a_train_log_without_loss_names_the_file(inputs, tmp_path):
    bad = tmp_path / "bad_train_log.csv"
    pd.read_csv(inputs["logs"][DATASETS[0]]).drop(columns="loss").to_csv(bad, index=False)
    with pytest.raises(UserError, match=r"bad_train_log\.csv.*no column 'loss'"):
        training_curves({"x": bad}, tmp_path / "training.png")
