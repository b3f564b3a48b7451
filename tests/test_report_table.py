"""The paper's table from evaluation results: cells, seeds, bold best, missing cells."""

import json

import pandas as pd
import pytest

from brownface.errors import UserError
from brownface.report.tables import TableRow, columns, report_table

COLS = columns(["lfw", "cfp_fp"], ["ijbc"], [1e-4, 1e-5])


def _verification(path, model, benchmark, acc, std=0.01):
    path.write_text(
        json.dumps(
            {"model": model, "benchmark": benchmark, "accuracy": acc, "std": std, "n_pairs": 6000}
        )
    )
    return path


def _ijb(path, model, tars):
    far = {
        "1e-06": 0.0,
        "1e-05": tars[1],
        "0.0001": tars[0],
        "0.001": 0.9,
        "0.01": 0.95,
        "0.1": 0.99,
    }
    path.write_text(json.dumps({"model": model, "benchmark": "ijbc", "tar_at_far": far}))
    return path


def _results(tmp_path, models):
    paths = []
    for model, (lfw, cfp, t4, t5) in models.items():
        paths.append(_verification(tmp_path / f"{model}-lfw.json", model, "lfw", lfw))
        paths.append(_verification(tmp_path / f"{model}-cfp.json", model, "cfp_fp", cfp))
        paths.append(_ijb(tmp_path / f"{model}-ijbc.json", model, (t4, t5)))
    return paths


def _write(tmp_path, results, rows):
    out = {k: tmp_path / f"table.{k}" for k in ("csv", "md", "tex")}
    mean = report_table(results, rows, COLS, csv=out["csv"], markdown=out["md"], latex=out["tex"])
    return mean, {k: v.read_text() for k, v in out.items()}


def test_columns_rows_bold_and_the_real_data_row(tmp_path):
    results = _results(
        tmp_path,
        {
            "world_reference_fr": (0.999, 0.96, 0.9, 0.8),
            "langevin-disco": (0.88, 0.66, 0.30, 0.10),
            "random-dispersion": (0.85, 0.68, 0.20, 0.15),
        },
    )
    rows = [
        TableRow("real data (world)", ("world_reference_fr",), real=True),
        TableRow("langevin-disco (200 x 17)", ("langevin-disco",)),
        TableRow("random-dispersion (200 x 17)", ("random-dispersion",)),
    ]
    mean, text = _write(tmp_path, results, rows)
    assert list(mean.columns) == ["lfw", "cfp_fp", "mean", "IJB-C TAR@1e-4", "IJB-C TAR@1e-5"]
    assert mean.loc["langevin-disco (200 x 17)", "mean"] == pytest.approx(77.0)
    assert mean.loc["random-dispersion (200 x 17)", "IJB-C TAR@1e-5"] == pytest.approx(15.0)
    md = text["md"]
    # One row = one run: fold std on verification sets, the plain TAR on IJB.
    assert "**88.00 ± 1.00**" in md and "85.00 ± 1.00" in md and "**68.00 ± 1.00**" in md
    assert "**30.00**" in md and "**15.00**" in md
    assert "99.90 ± 1.00" in md and "**99.90" not in md  # the real-data row is never bold
    assert "\\textbf{88.00 $\\pm$ 1.00}" in text["tex"] and "world" in text["tex"]
    long = pd.read_csv(tmp_path / "table.csv")
    assert set(long.columns) == {"row", "model", "column", "value", "fold_std"}


def test_seeds_show_mean_and_spread_over_seeds(tmp_path):
    results = _results(
        tmp_path,
        {
            "a@s0": (0.80, 0.60, 0.1, 0.0),
            "a@s1": (0.84, 0.62, 0.3, 0.2),
            "a@s2": (0.82, 0.64, 0.2, 0.1),
        },
    )
    mean, text = _write(tmp_path, results, [TableRow("a (3 seeds)", ("a@s0", "a@s1", "a@s2"))])
    assert mean.loc["a (3 seeds)", "lfw"] == pytest.approx(82.0)
    assert "**82.00 ± 2.00**" in text["md"]  # std over the seeds (ddof 1), not over folds
    assert "**20.00 ± 10.00**" in text["md"]
    # The mean column: per seed first (70, 73, 73), then over the seeds.
    assert "**72.00 ± 1.73**" in text["md"]


def test_a_missing_cell_is_one_error_naming_model_and_set(tmp_path):
    results = _results(tmp_path, {"a": (0.8, 0.6, 0.1, 0.05)})
    results = [p for p in results if "cfp" not in p.name]
    with pytest.raises(
        UserError, match=r"no evaluation result of model 'a' on 'cfp_fp' \(row 'a'\)"
    ):
        _write(tmp_path, results, [TableRow("a", ("a",))])
    assert not (tmp_path / "table.md").exists()
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"dataset": "lfw", "accuracy": 0.9}))
    with pytest.raises(UserError, match="old.json: evaluation result has no 'model'"):
        _write(tmp_path, [bad], [TableRow("a", ("a",))])
    far = _ijb(tmp_path / "x.json", "a", (0.1, 0.1))
    data = json.loads(far.read_text())
    del data["tar_at_far"]["0.0001"]
    far.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"x.json: no TAR at FAR 0.0001"):
        _write(
            tmp_path,
            [*results, far, _verification(tmp_path / "c.json", "a", "cfp_fp", 0.5)],
            [TableRow("a", ("a",))],
        )


def _leakage(root, collection, dataset, leaked):
    path = root / "leakage" / collection / f"{dataset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"leaked": {"0.001": 2 * leaked, "0.0001": leaked}}))
    return path


def test_the_leakage_column_is_lowest_best_and_empty_for_real_data(tmp_path):
    from brownface.report.tables import index_leakage, index_results

    results = _results(
        tmp_path,
        {
            "world_reference_fr": (0.999, 0.96, 0.9, 0.8),
            "langevin": (0.88, 0.66, 0.30, 0.10),
            "random": (0.85, 0.68, 0.20, 0.15),
        },
    )
    measures = [
        _leakage(tmp_path, "ffhq", "langevin", 0.02),
        _leakage(tmp_path, "ffhq", "random", 0.08),
    ]
    cols = columns(["lfw", "cfp_fp"], ["ijbc"], [1e-4, 1e-5], ["ffhq"], 1e-4)
    assert cols[-1].label == "leaked@1e-4 ffhq" and cols[-1].lower_is_better
    rows = [
        TableRow("real data", ("world_reference_fr",), real=True),
        TableRow("langevin", ("langevin",)),
        TableRow("random", ("random",)),
    ]
    records = {**index_results(results), **index_leakage(measures)}
    out = {k: tmp_path / f"table.{k}" for k in ("csv", "md", "tex")}
    mean = report_table(records, rows, cols, csv=out["csv"], markdown=out["md"], latex=out["tex"])
    assert mean.loc["langevin", "leaked@1e-4 ffhq"] == pytest.approx(2.0)
    assert mean.loc["random", "leaked@1e-4 ffhq"] == pytest.approx(8.0)
    assert pd.isna(mean.loc["real data", "leaked@1e-4 ffhq"])
    md = out["md"].read_text()
    assert "**2.00**" in md and "| 8.00 " in md and "–" in md  # lowest is bold; real row empty
    missing = columns([], [], [], ["ffhq"], 1e-5)
    with pytest.raises(UserError, match="no leaked fraction at FAR 1e-05"):
        report_table(
            records, rows[1:], missing, csv=out["csv"], markdown=out["md"], latex=out["tex"]
        )
