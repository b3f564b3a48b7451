"""The paper's figures from the stages' outputs: ROC curves, angle histograms, sampler
statistics over iterations and training curves.

Each function reads the files a stage wrote, draws one PNG on matplotlib's Agg canvas (a bare
``Figure``, no pyplot: no global figure state, no display) and writes it atomically. The same
inputs give the same bytes: the PNG carries no software tag, the style is fixed here rather
than taken from the user's matplotlibrc, and curves are drawn in a fixed order. A name (dataset
or model) gets its colour from its position in ``order`` (default: the sorted names), so pass
the same ``order`` to every figure and a dataset keeps its colour across the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from brownface.dataset.angles import dataset_angles
from brownface.errors import UserError
from brownface.store import VariationStore, atomic_path
from brownface.train.loop import LOG_COLUMNS

DPI = 200  # print resolution; a figure is (width, height) inches x DPI pixels
ROC_SIZE = (5.0, 4.0)  # 1000 x 800 pixels
ANGLES_SIZE = (9.0, 3.6)  # 1800 x 720
SAMPLING_SIZE = (9.0, 7.0)  # 1800 x 1400
TRAINING_SIZE = (9.0, 3.6)  # 1800 x 720

FAR_RANGE = (1e-6, 1.0)
BINS = 60  # histogram bins, shared by every dataset of a panel
PALETTE = "tab10"
STAT_STYLES = {"mean": "-", "min": ":"}  # Langevin's nearest-neighbour angle statistics
VAL_STYLES = ("-", "--", ":", "-.")  # one per validation set, in sorted order
ICT_STYLE = dict(color="black", linestyle="--", linewidth=0.9)  # in every figure

# Fixed here so a user's matplotlibrc changes neither the look nor the bytes.
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

ROC_COLUMNS = ("far", "tar", "threshold")
IDENTITY_STAT_COLUMNS = ("iteration", "nn_angle_min", "nn_angle_mean", "frac_below_ict")
VARIATION_STAT_COLUMNS = ("iteration", "angle_mean", "intra_angle_mean")


# ---------------------------------------------------------------------------------------------
# Shared pieces.


def dataset_colours(names: Iterable[str], order: Sequence[str] = ()) -> dict[str, str]:
    """Hex colours of ``names``, in drawing order: the names of ``order`` first, in that order,
    then the others sorted; colour i of tab10 goes to position i (of ``order`` + the others)."""
    names = list(names)
    ordered = list(dict.fromkeys(order)) + sorted(set(names) - set(order))
    cmap = mpl.colormaps[PALETTE]
    return {
        n: mpl.colors.to_hex(cmap(i % cmap.N)) for i, n in enumerate(ordered) if n in set(names)
    }


def read_table(
    path: str | Path, columns: Sequence[str], what: str, *, min_rows: int = 1
) -> pd.DataFrame:
    """A CSV with at least these columns, numeric (inf as NaN); else one UserError naming the file."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:  # pandas' parser errors are ValueErrors
        raise UserError(f"{path}: not a readable {what} CSV ({exc})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(
            f"{path}: {what} CSV has no column {missing[0]!r} (expected {', '.join(columns)})"
        )
    if len(table) < min_rows:
        raise UserError(f"{path}: {what} CSV has no rows")
    return numeric(table, columns, path, what)


def numeric(
    table: pd.DataFrame, columns: Sequence[str], path: str | Path, what: str
) -> pd.DataFrame:
    """These columns as float64 (empty cells and inf as NaN); a word in one is a UserError."""
    for col in columns:
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() & table[col].notna()
        if bad.any():
            raise UserError(
                f"{path}: {what} CSV column {col!r} has a non-number {table[col][bad].iloc[0]!r}"
            )
        table[col] = values.astype(np.float64).replace([np.inf, -np.inf], np.nan)
    return table


def _require(mapping: Mapping, function: str, what: str) -> None:
    if not mapping:
        raise UserError(f"{function}: no inputs given (expected at least one {what})")


@contextmanager
def _drawing(out: str | Path, size: tuple[float, float]) -> Iterator[Figure]:
    """A figure in the report style; saved to ``out`` as PNG (atomically) when the body ends."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        yield fig
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def _legend(
    ax: Axes,
    colours: Mapping[str, str],
    styles: Mapping[str, str],
    ict: float | None = None,
    **kw,
) -> None:
    """One entry per name (its colour) and one per line style (grey), not one per pair."""
    handles = [Line2D([], [], color=c, label=n) for n, c in colours.items()]
    handles += [Line2D([], [], color="0.4", linestyle=s, label=n) for n, s in styles.items()]
    if ict is not None:
        handles.append(Line2D([], [], **ICT_STYLE, label=f"ICT {ict:g}°"))
    ax.legend(handles=handles, **kw)


# ---------------------------------------------------------------------------------------------
# ROC.


def read_roc(path: str | Path) -> pd.DataFrame:
    """A ROC CSV (far, tar, threshold) with FAR > 0 and TAR in [0, 1], sorted by FAR."""
    table = read_table(path, ROC_COLUMNS, "ROC")
    far, tar = table["far"], table["tar"]
    if far.isna().any() or not (far > 0).all():
        raise UserError(f"{path}: ROC CSV needs every far > 0 (a log axis), got {far.min():g}")
    if tar.isna().any() or not tar.between(0, 1).all():
        raise UserError(f"{path}: ROC CSV needs every tar in [0, 1]")
    return table.sort_values("far", kind="stable").reset_index(drop=True)


def roc_figure(
    curves: Mapping[str, str | Path],  # name (dataset or model) -> its ROC CSV
    out: str | Path,  # the PNG
    *,
    title: str,
    order: Sequence[str] = (),  # names in colour order (see dataset_colours)
) -> None:
    """TAR (%) against FAR on a log axis from 1e-6 to 1, one curve per name (the IJB-C figure)."""
    _require(curves, "roc_figure", "name -> ROC CSV")
    tables = {name: read_roc(path) for name, path in curves.items()}
    colours = dataset_colours(tables, order)
    shown = [t["tar"][t["far"] >= FAR_RANGE[0]] for t in tables.values()]
    lowest = min((float(s.min()) for s in shown if len(s)), default=0.0)
    bottom = min(max(10 * np.floor(10 * lowest), 0.0), 90.0)  # TAR in %, down to a multiple of 10
    with _drawing(out, ROC_SIZE) as fig:
        ax = fig.add_subplot()
        for name, colour in colours.items():
            t = tables[name]
            ax.plot(t["far"], 100 * t["tar"], color=colour, label=name)
        ax.set_xscale("log")
        ax.set_xlim(*FAR_RANGE)
        ax.set_ylim(bottom, 100)
        ax.set_xlabel("false accept rate (FAR)")
        ax.set_ylabel("true accept rate (TAR, %)")
        ax.set_title(title)
        # Curves rise to the right and may cross anywhere: the least covered corner, on a
        # light frame so that a curve under the labels does not strike them through.
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none")


# ---------------------------------------------------------------------------------------------
# Angle distributions.


def _histograms(
    ax: Axes, values: Mapping[str, np.ndarray], colours: Mapping[str, str], ict: float | None
) -> None:
    """Step histograms (density) on bins shared by every dataset, and the ICT line."""
    pooled = np.concatenate([v for v in values.values()] + [np.asarray([], float)])
    if ict is not None:
        ax.axvline(ict, **ICT_STYLE, label=f"ICT {ict:g}°")
    if not pooled.size:
        ax.text(0.5, 0.5, "no angles", transform=ax.transAxes, ha="center", va="center")
        return
    lo, hi = float(pooled.min()), float(pooled.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    for name, colour in colours.items():
        if values[name].size:
            ax.hist(
                values[name], bins=edges, histtype="step", density=True, color=colour, label=name
            )


def angle_histograms(
    stores: Mapping[str, str | Path],  # dataset -> its variations store (variations.h5)
    out: str | Path,
    *,
    ict_deg: float | None = None,  # identity-consistency threshold (degrees); None = no line
    order: Sequence[str] = (),
) -> None:
    """Inter-class nearest-neighbour angles (one per identity) beside intra-class angles
    (each variation to its reference), one step histogram per dataset."""
    _require(stores, "angle_histograms", "dataset -> variations store")
    inter, intra = {}, {}
    for name, path in stores.items():
        a = dataset_angles(VariationStore.read(path))
        inter[name] = a.inter_nearest[np.isfinite(a.inter_nearest)]  # inf when N == 1
        flat = a.intra_to_reference.ravel()
        intra[name] = flat[np.isfinite(flat)]
    colours = dataset_colours(stores, order)
    with _drawing(out, ANGLES_SIZE) as fig:
        left, right = fig.subplots(1, 2)
        panels = (
            (left, inter, "inter-class: nearest other identity", "angle between references (°)"),
            (right, intra, "intra-class: variation to its reference", "angle (°)"),
        )
        for ax, values, title, xlabel in panels:
            _histograms(ax, values, colours, ict_deg)
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("density")
        left.legend(loc="best")


# ---------------------------------------------------------------------------------------------
# Sampler statistics.


def combine_shards(dataset: str, paths: Sequence[str | Path]) -> pd.DataFrame:
    """The variation statistics of a dataset: per iteration, the mean over its shards' CSVs
    (a shard's NaN, e.g. an empty shard, is left out), indexed by iteration."""
    if not paths:
        raise UserError(f"sampling_stats_figure: dataset {dataset!r} has no shard statistics CSVs")
    tables = [read_table(p, VARIATION_STAT_COLUMNS, "variation statistics") for p in paths]
    columns = list(VARIATION_STAT_COLUMNS[1:])
    return pd.concat(tables).groupby("iteration", sort=True)[columns].mean()


def _over_iterations(ax: Axes, x: pd.Series, y: pd.Series, **kw) -> None:
    """A line, or a horizontal line for a one-row table (random, reject: a single draw)."""
    if len(y) == 1:
        if np.isfinite(y.iloc[0]):  # NaN: the one identity of an n = 1 draw has no neighbour
            ax.axhline(float(y.iloc[0]), **kw)
    else:
        ax.plot(x, y, **kw)


def sampling_stats_figure(
    identities: Mapping[str, str | Path],  # identity recipe -> its stats.csv
    variations: Mapping[str, Sequence[str | Path]],  # dataset -> its shards' stats CSVs
    out: str | Path,
    *,
    ict_deg: float | None = None,  # identity-consistency threshold (degrees); None = no line
    order: Sequence[str] = (),  # recipe and dataset names in colour order
) -> None:
    """Langevin's nearest-neighbour angles and fraction below the ICT over iterations (top),
    Dispersion / DisCo's angles to the reference and within an identity (bottom)."""
    _require(identities, "sampling_stats_figure", "identity recipe -> stats.csv")
    _require(variations, "sampling_stats_figure", "dataset -> shard statistics CSVs")
    ids = {
        n: read_table(p, IDENTITY_STAT_COLUMNS, "identity statistics")
        for n, p in identities.items()
    }
    var = {n: combine_shards(n, paths) for n, paths in variations.items()}
    id_colours, var_colours = dataset_colours(ids, order), dataset_colours(var, order)
    with _drawing(out, SAMPLING_SIZE) as fig:
        (nn, frac), (ref, intra) = fig.subplots(2, 2)
        for name, colour in id_colours.items():
            t = ids[name]
            for stat, style in STAT_STYLES.items():
                y = np.rad2deg(t[f"nn_angle_{stat}"])
                _over_iterations(nn, t["iteration"], y, color=colour, linestyle=style)
            _over_iterations(frac, t["iteration"], 100 * t["frac_below_ict"], color=colour)
        for name, colour in var_colours.items():
            t = var[name]
            _over_iterations(ref, t.index.to_series(), np.rad2deg(t["angle_mean"]), color=colour)
            y = np.rad2deg(t["intra_angle_mean"])
            _over_iterations(intra, t.index.to_series(), y, color=colour)
        if ict_deg is not None:
            for ax in (nn, ref):
                ax.axhline(ict_deg, **ICT_STYLE)
        nn.set(title="identities: nearest other identity", ylabel="angle (°)")
        frac.set(title="identities: nearest closer than the ICT", ylabel="identities (%)")
        ref.set(title="variations: angle to the reference", ylabel="mean angle (°)")
        intra.set(title="variations: angle within an identity", ylabel="mean pairwise angle (°)")
        for ax in (nn, frac, ref, intra):
            ax.set_xlabel("iteration")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _legend(nn, id_colours, STAT_STYLES, ict_deg, loc="best")
        _legend(ref, var_colours, {}, ict_deg, loc="best")


# ---------------------------------------------------------------------------------------------
# Training.


def read_train_log(path: str | Path) -> tuple[pd.Series, pd.DataFrame]:
    """Loss per epoch and validation accuracy (%) per epoch of a trainer's train_log.csv.

    The trainer writes a row every ``log_every`` steps with the 0-based epoch it ran in and
    the loss, and after each epoch a row with the number of epochs done and only the val_<set>
    accuracies (fractions). Both come back on that 1-based epoch axis: the loss of epoch e is
    the mean of its rows, plotted where its validation is.
    """
    table = read_table(path, LOG_COLUMNS, "training log", min_rows=0)
    if table[["step", "epoch"]].isna().any(axis=None):
        raise UserError(f"{path}: training log has a row without step or epoch")
    val_cols = [c for c in table.columns if c.startswith("val_")]
    table = numeric(table, val_cols, path, "training log")
    is_check = table["lr"].isna()  # not the loss: a diverged step logs loss nan
    steps, checks = table[~is_check], table[is_check]
    # NaN-propagating mean: a diverged epoch shows as a gap, not as its finite steps' mean.
    loss = steps.groupby(steps["epoch"].astype(np.int64) + 1)["loss"].agg(
        lambda s: float(np.mean(s.to_numpy()))
    )
    val = checks.groupby(checks["epoch"].astype(np.int64))[val_cols].mean() * 100
    val.columns = [c.removeprefix("val_") for c in val_cols]
    return loss.rename_axis("epoch"), val.rename_axis("epoch")


def training_curves(
    logs: Mapping[str, str | Path],  # model (dataset) -> its train_log.csv
    out: str | Path,
    *,
    order: Sequence[str] = (),
) -> None:
    """Training loss per epoch (left) and validation accuracy per epoch (right), one colour
    per model and one line style per validation set."""
    _require(logs, "training_curves", "model -> train_log.csv")
    curves = {name: read_train_log(path) for name, path in logs.items()}
    colours = dataset_colours(curves, order)
    sets = sorted({s for _, val in curves.values() for s in val.columns})
    styles = {s: VAL_STYLES[i % len(VAL_STYLES)] for i, s in enumerate(sets)}
    with _drawing(out, TRAINING_SIZE) as fig:
        left, right = fig.subplots(1, 2)
        for name, colour in colours.items():
            loss, val = curves[name]
            left.plot(loss.index, loss, color=colour, marker=".", label=name)
            for s in val.columns:
                y = val[s].dropna()
                right.plot(y.index, y, color=colour, linestyle=styles[s], marker=".")
        left.set(title="training loss (mean over the epoch)", ylabel="loss")
        right.set(title="validation accuracy", ylabel="accuracy (%)")
        if not sets:
            right.text(0.5, 0.5, "no validation sets", transform=right.transAxes, ha="center")
        for ax in (left, right):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.legend(loc="best")
        _legend(right, colours if len(colours) > 1 else {}, styles, loc="best")


# ---------------------------------------------------------------------------------------------
# Leakage.

LEAKAGE_PANEL = (4.5, 3.6)  # per real collection
FAR_STYLES = ("--", ":", "-.")  # one per FAR threshold, in the measure's order


def read_leakage(path: str | Path) -> dict:
    """A leakage measure (``results/leakage/<collection>/<dataset>.json``), checked."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable leakage measure ({exc})") from None
    for key in ("histogram", "thresholds", "leaked"):
        if key not in data:
            raise UserError(f"{path}: leakage measure has no {key!r}")
    return data


def leakage_histograms(
    measures: Mapping[str, Mapping[str, str | Path]],  # collection -> dataset -> measure JSON
    out: str | Path,
    *,
    order: Sequence[str] = (),
) -> None:
    """Nearest-real angles of each dataset's identities (density of the measure's 1-degree
    histogram), one panel per real collection, with the FR's threshold at each FAR."""
    _require(measures, "leakage_histograms", "collection -> dataset -> leakage JSON")
    names = sorted({d for per in measures.values() for d in per})
    colours = dataset_colours(names, order)
    width, height = LEAKAGE_PANEL
    with _drawing(out, (width * len(measures), height)) as fig:
        axes = np.atleast_1d(fig.subplots(1, len(measures)))
        for ax, (collection, per) in zip(axes, measures.items(), strict=True):
            thresholds: dict = {}
            for name, colour in colours.items():
                if name not in per:
                    continue
                data = read_leakage(per[name])
                edges = np.asarray(data["histogram"]["edges"], float)
                counts = np.asarray(data["histogram"]["counts"], float)
                density = counts / max(counts.sum(), 1.0) / np.diff(edges)
                ax.stairs(density, edges, color=colour, label=name)
                thresholds = data["thresholds"]
            for style, (far, t) in zip(FAR_STYLES, thresholds.items(), strict=False):
                ax.axvline(
                    t["degrees"], color="black", linestyle=style, linewidth=0.9,
                    label=f"FAR {far}: {t['degrees']:.1f}°",
                )  # fmt: skip
            ax.set_title(f"nearest identity in {collection}")
            ax.set_xlabel("angle to the nearest real identity (°)")
            ax.set_ylabel("density")
            ax.legend(loc="best")


# ---------------------------------------------------------------------------------------------
# Identity capacity.

CAPACITY_SIZE = (10.0, 3.4)  # 2000 x 680
FR_STYLE = dict(color="tab:blue", marker="o", markersize=3)
TRUTH_STYLE = dict(color="tab:orange", marker="s", markersize=3, linestyle="--")


def capacity_figure(
    table: str | Path, out: str | Path, *, ict_deg: float, label: str = "Langevin"
) -> None:
    """The capacity rule's table against N: the fraction of identities with a neighbour
    inside ICT, the mean nearest angle, and the distinct identities (the FR's packing at ICT;
    in the world, the true count of distinct people beside it)."""
    data = pd.read_csv(table)
    missing = [c for c in ("n", "frac_below_ict", "nn_angle_mean_deg", "distinct") if c not in data]
    if missing:
        raise UserError(f"{table}: capacity table has no column {missing[0]!r}")
    truth = "true_distinct" in data and data["true_distinct"].notna().any()
    n = data["n"]
    with _drawing(out, CAPACITY_SIZE) as fig:
        frac, nearest, distinct = fig.subplots(1, 3)
        frac.plot(n, data["frac_below_ict"], label=f"{label}: neighbour inside ICT", **FR_STYLE)
        if truth:
            frac.plot(n, data["true_frac_repeated"], label="truth: same person as another",
                      **TRUTH_STYLE)  # fmt: skip
        frac.set_ylim(-0.03, 1.03)
        frac.set_ylabel("fraction of identities")
        frac.set_title(f"identities with a neighbour inside ICT ({ict_deg:.1f}°)")
        nearest.plot(n, data["nn_angle_mean_deg"], label="reference FR embeddings", **FR_STYLE)
        if truth:
            nearest.plot(n, data["true_nn_angle_mean_deg"], label="true identity vectors",
                         **TRUTH_STYLE)  # fmt: skip
        nearest.axhline(ict_deg, **ICT_STYLE, label=f"ICT {ict_deg:.1f}°")
        nearest.set_ylabel("mean nearest angle (°)")
        nearest.set_title("mean angle to the nearest identity")
        distinct.plot(n, n, color="grey", linewidth=0.8, linestyle=":", label="N")
        distinct.plot(n, data["distinct"], label="FR: packing at ICT", **FR_STYLE)
        if truth:
            distinct.plot(n, data["true_distinct"], label="truth: distinct people", **TRUTH_STYLE)
        distinct.set_ylabel("distinct identities")
        distinct.set_title("distinct identities among N")
        for ax in (frac, nearest, distinct):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(n.tolist()))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel("N (identities sampled)")
        frac.legend(loc="center right")
        nearest.legend(loc="lower left")
        distinct.legend(loc="upper left")
