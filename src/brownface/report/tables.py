"""The verification table: one row per model (dataset), one column per benchmark, as in the
paper's tables (accuracy in %, mean over the 10 folds, with the population std).

Written as CSV (numbers), Markdown (``mean +- std``) and LaTeX (``booktabs``) with pandas.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from brownface.errors import UserError
from brownface.store import atomic_path


def collect(results: list[str | Path]) -> pd.DataFrame:
    """Evaluation JSONs -> a long table (model, benchmark, accuracy %, std %, n_pairs)."""
    rows = []
    for path in results:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not a readable evaluation result ({exc})") from None
        missing = [k for k in ("model", "benchmark", "accuracy", "std", "n_pairs") if k not in data]
        if missing:
            raise UserError(f"{path}: evaluation result has no {missing[0]!r}")
        rows.append(
            dict(
                model=data["model"],
                benchmark=data["benchmark"],
                accuracy=100 * data["accuracy"],
                std=100 * data["std"],
                n_pairs=data["n_pairs"],
            )
        )
    return pd.DataFrame(rows)


def verification_table(
    results: list[str | Path], csv: Path, markdown: Path, latex: Path
) -> pd.DataFrame:
    """Write the model x benchmark accuracy table in three formats; returns the wide table."""
    long = collect(results)
    wide = long.pivot(index="model", columns="benchmark", values="accuracy")
    std = long.pivot(index="model", columns="benchmark", values="std")
    wide["average"] = wide.mean(axis=1)
    with atomic_path(csv) as tmp:
        long.sort_values(["model", "benchmark"]).to_csv(
            tmp, index=False, float_format="%.4f", lineterminator="\n"
        )
    cells = wide.copy().astype(object)
    for col in std.columns:
        cells[col] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(wide[col], std[col])]
    cells["average"] = [f"{m:.2f}" for m in wide["average"]]
    with atomic_path(markdown) as tmp:
        Path(tmp).write_text(cells.reset_index().to_markdown(index=False) + "\n")
    with atomic_path(latex) as tmp:
        Path(tmp).write_text(wide.round(2).to_latex(float_format="%.2f") + "\n")
    return wide
