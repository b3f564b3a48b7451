"""The paper's table: one row per dataset, a column per verification set, their mean, TAR
at the chosen FARs of each IJB set, and the percentage of its identities leaked from each real
face collection (at one FAR; lower is better; no value for the real-data rows).

Cells are percentages. A row trained once shows ``mean ± std`` over the 10 folds of a
verification set (the insightface protocol's population std) and the plain TAR of an IJB set;
a row trained with several seeds shows the mean over its seeds ``± std`` over the seeds
(ddof 1), so an ordering is read off more than one draw. The best synthetic row of each column
(by its mean) is bold in Markdown and LaTeX; the real-data rows are a reference, never bold.
Written as CSV (numbers, one line per cell), Markdown and LaTeX with pandas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brownface.errors import UserError
from brownface.store import atomic_path

MEAN_COLUMN = "mean"
LEAKAGE_PREFIX = "leakage:"  # a leakage column's benchmark: "leakage:<collection>"


@dataclass(frozen=True)
class TableRow:
    """A row of the table and the models (one per seed) whose results it aggregates."""

    label: str  # e.g. "langevin-disco (200 x 17)"
    models: tuple[str, ...]  # model names as the evaluation results name them
    real: bool = False  # a real-data reference row (not ranked)


@dataclass(frozen=True)
class Column:
    label: str  # "lfw", "IJB-C TAR@1e-4"
    benchmark: str  # the result's benchmark name
    far: float | None = None  # for IJB and leakage columns
    lower_is_better: bool = False  # leakage: the best row has the lowest value

    @property
    def leakage(self) -> bool:
        return self.benchmark.startswith(LEAKAGE_PREFIX)


def columns(
    verification_sets: Sequence[str],
    ijb_sets: Sequence[str],
    fars: Sequence[float],
    leakage: Sequence[str] = (),  # real face collections
    leakage_far: float | None = None,
) -> list[Column]:
    """The table's columns in order: verification sets, their mean, IJB TAR at each FAR, then
    the leaked percentage against each real collection at ``leakage_far``."""
    cols = [Column(name, name) for name in verification_sets]
    if verification_sets:
        cols.append(Column(MEAN_COLUMN, MEAN_COLUMN))
    for name in ijb_sets:
        pretty = f"IJB-{name[3:].upper()}" if name.startswith("ijb") else name
        cols += [
            Column(f"{pretty} TAR@{far:.0e}".replace("e-0", "e-"), name, float(far)) for far in fars
        ]
    if leakage and leakage_far is None:
        raise ValueError("columns: leakage columns need leakage_far")
    for name in leakage:
        label = f"leaked@{leakage_far:.0e} {name}".replace("e-0", "e-")
        cols.append(Column(label, LEAKAGE_PREFIX + name, float(leakage_far), lower_is_better=True))
    return cols


def _read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable evaluation result ({exc})") from None
    for key in ("model", "benchmark"):
        if key not in data:
            raise UserError(f"{path}: evaluation result has no {key!r}")
    if "accuracy" not in data and "tar_at_far" not in data:
        raise UserError(f"{path}: evaluation result has neither 'accuracy' nor 'tar_at_far'")
    return data


def _value(data: dict, column: Column, path: Path) -> tuple[float, float]:
    """(value %, fold std % or nan) of one result for one column."""
    if column.leakage:
        leaked = {float(k): float(v) for k, v in data["leaked"].items()}
        if column.far not in leaked:
            known = ", ".join(f"{k:g}" for k in sorted(leaked)) or "none"
            raise UserError(f"{path}: no leaked fraction at FAR {column.far:g} (has {known})")
        return 100 * leaked[column.far], np.nan
    if column.far is None:
        if "accuracy" not in data:
            raise UserError(f"{path}: {data['benchmark']} is not a verification result")
        return 100 * float(data["accuracy"]), 100 * float(data.get("std", np.nan))
    table = {float(k): float(v) for k, v in data.get("tar_at_far", {}).items()}
    if column.far not in table:
        known = ", ".join(f"{k:g}" for k in sorted(table)) or "none"
        raise UserError(f"{path}: no TAR at FAR {column.far:g} (has {known})")
    return 100 * table[column.far], np.nan


Records = dict[tuple[str, str], tuple[dict, Path]]  # (model, benchmark) -> (result, its file)


def index_results(results: Sequence[str | Path], suffix: str = "") -> Records:
    """Evaluation JSONs keyed by (model + suffix, benchmark); the suffix tells apart the same
    model name from several runs (a study's seeds)."""
    records: Records = {}
    for path in results:
        data = _read(Path(path))
        records[(data["model"] + suffix, data["benchmark"])] = (data, Path(path))
    return records


def index_leakage(measures: Sequence[str | Path], suffix: str = "") -> Records:
    """Leakage measures keyed by (dataset + suffix, "leakage:<collection>"), from their place
    in the layout the leakage rule writes: ``<results>/leakage/<collection>/<dataset>.json``."""
    records: Records = {}
    for path in measures:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a readable leakage measure ({exc})") from None
        if "leaked" not in data:
            raise UserError(f"{path}: leakage measure has no 'leaked'")
        records[(path.stem + suffix, LEAKAGE_PREFIX + path.parent.name)] = (data, path)
    return records


def cell_values(
    results: Sequence[str | Path] | Records, rows: Sequence[TableRow], cols: Sequence[Column]
) -> pd.DataFrame:
    """Long table: one line per (row, model, column) with value and fold std (%).

    Every cell must have its result: a missing one is one error naming the model and set
    (the real-data rows have no leakage, so theirs is left empty).
    """
    by_key = results if isinstance(results, dict) else index_results(results)
    lines = []
    for row in rows:
        for model in row.models:
            for col in cols:
                if col.benchmark == MEAN_COLUMN or (row.real and col.leakage):
                    continue
                if (model, col.benchmark) not in by_key:
                    raise UserError(
                        f"report: no evaluation result of model {model!r} on {col.benchmark!r} "
                        f"(row {row.label!r}); every cell of the table needs one"
                    )
                data, path = by_key[(model, col.benchmark)]
                value, std = _value(data, col, path)
                lines.append(
                    dict(row=row.label, model=model, column=col.label, value=value, fold_std=std)
                )
    long = pd.DataFrame(lines, columns=["row", "model", "column", "value", "fold_std"])
    verification = [c.label for c in cols if c.far is None and c.benchmark != MEAN_COLUMN]
    if verification:
        means = (
            long[long["column"].isin(verification)]
            .groupby(["row", "model"], sort=False)["value"]
            .mean()
        )
        extra = means.reset_index().assign(column=MEAN_COLUMN, fold_std=np.nan)
        long = pd.concat([long, extra[long.columns]], ignore_index=True)
    return long


def aggregate(
    long: pd.DataFrame, rows: Sequence[TableRow], cols: Sequence[Column]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide (mean, spread) tables [rows x columns]: the spread is the fold std of a row with
    one model and the std over seeds of a row with several."""
    mean = pd.DataFrame(index=[r.label for r in rows], columns=[c.label for c in cols], dtype=float)
    spread = mean.copy()
    for row in rows:
        sub = long[long["row"] == row.label]
        for col in cols:
            cell = sub[sub["column"] == col.label]
            if cell.empty:  # a real-data row's leakage
                continue
            mean.loc[row.label, col.label] = cell["value"].mean()
            if len(row.models) > 1:
                spread.loc[row.label, col.label] = cell["value"].std(ddof=1)
            else:
                spread.loc[row.label, col.label] = cell["fold_std"].iloc[0]
    return mean, spread


def best_rows(
    mean: pd.DataFrame, rows: Sequence[TableRow], lower: Sequence[str] = ()
) -> dict[str, set[str]]:
    """Column -> labels of the synthetic rows with the best mean (ties all bold): the highest,
    or the lowest in the ``lower`` columns (leakage)."""
    synthetic = [r.label for r in rows if not r.real]
    best: dict[str, set[str]] = {}
    for col in mean.columns:
        values = mean.loc[synthetic, col].astype(float)
        if values.notna().any():
            target = values.min() if col in lower else values.max()
            best[col] = set(values.index[np.isclose(values, target, rtol=0, atol=1e-9)])
    return best


def _latex_escape(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


def _cell(m: float, s: float) -> str:
    if np.isnan(m):
        return "–"
    return f"{m:.2f}" if np.isnan(s) else f"{m:.2f} ± {s:.2f}"


def report_table(
    results: Sequence[str | Path] | Records,
    rows: Sequence[TableRow],
    cols: Sequence[Column],
    *,
    csv: str | Path,
    markdown: str | Path,
    latex: str | Path,
    html: str | Path | None = None,
) -> pd.DataFrame:
    """Write the table as CSV, Markdown, LaTeX (and HTML, for Snakemake's report); returns
    the wide table of means."""
    if not rows:
        raise UserError("report: no rows (configure datasets, or a real-data reference model)")
    long = cell_values(results, rows, cols)
    mean, spread = aggregate(long, rows, cols)
    best = best_rows(mean, rows, [c.label for c in cols if c.lower_is_better])
    with atomic_path(csv) as tmp:
        long.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")

    def cells(bold: str) -> pd.DataFrame:
        out = pd.DataFrame(index=mean.index, columns=mean.columns, dtype=object)
        for label in mean.index:
            for col in mean.columns:
                text = _cell(mean.loc[label, col], spread.loc[label, col])
                out.loc[label, col] = bold.format(text) if label in best.get(col, ()) else text
        out.index.name = "dataset"
        return out

    md = cells("**{}**")
    with atomic_path(markdown) as tmp:
        Path(tmp).write_text(md.reset_index().to_markdown(index=False) + "\n", encoding="utf-8")
    tex = cells("\\textbf{{{}}}").apply(lambda c: c.str.replace(" ± ", " $\\pm$ ", regex=False))
    tex.index = [_latex_escape(label) for label in tex.index]
    tex.columns = [_latex_escape(label) for label in tex.columns]
    tex.index.name = "dataset"
    with atomic_path(latex) as tmp:
        Path(tmp).write_text(tex.to_latex(escape=False) + "\n", encoding="utf-8")
    if html is not None:
        page = cells("<b>{}</b>").to_html(escape=False, border=0)
        with atomic_path(html) as tmp:
            Path(tmp).write_text(
                f'<!DOCTYPE html>\n<meta charset="utf-8">\n{page}\n', encoding="utf-8"
            )
    return mean
