"""A study: the whole workflow once per seed, and what the paper's orderings look like across
the seeds.

One run of the demo cannot carry an ordering: float differences between machines move a row
by more than its fold spread. A study reruns the workflow with the world, sampling and training
seeds all set to each seed in turn (each run in its own results directory), then

* tabulates every dataset as mean ± std over the runs (``brownface.report.tables``), and
* judges each ordering the paper claims, per column, from the paired per-seed differences:
  Langevin identities over random ones with the same variations recipe, and DisCo variations
  over Dispersion with the same identities recipe. A claim *holds* when the mean difference is
  positive and a one-sided paired t-test gives p < 0.05; it is *reversed* when the opposite
  test does; otherwise the study cannot tell the two apart (*unresolved*).
"""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from brownface.errors import UserError
from brownface.report.tables import (
    MEAN_COLUMN,
    Records,
    TableRow,
    cell_values,
    columns,
    index_results,
    report_table,
)
from brownface.store import atomic_path
from brownface.world.layout import REFERENCE_FR_NAME

log = logging.getLogger(__name__)

ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    better: str  # the dataset the paper says is better
    worse: str
    what: str  # the ordering in words


#: The paper's orderings: (the recipe kind that differs, the better and the worse algorithm,
#: the kind both datasets share, the ordering in words).
ORDERINGS: tuple[tuple[str, str, str, str, str], ...] = (
    ("identities", "langevin", "random", "variations", "Langevin over random identities"),
    ("variations", "disco", "dispersion", "identities", "DisCo over Dispersion"),
)


def paper_claims(config: Mapping[str, Any]) -> list[Claim]:
    """The orderings the paper claims, among the configured datasets."""
    datasets = config["datasets"]

    def algorithm(name: str, kind: str) -> str:
        return config[kind][datasets[name][kind]]["algorithm"]

    claims = []
    for a in datasets:
        for b in datasets:
            for kind, better, worse, shared, what in ORDERINGS:
                if (
                    datasets[a][shared] == datasets[b][shared]
                    and algorithm(a, kind) == better
                    and algorithm(b, kind) == worse
                ):
                    claims.append(Claim(a, b, f"{what} ({shared} {datasets[a][shared]})"))
    return claims


def seed_config(base: Mapping[str, Any], seed: int, results: str) -> dict[str, Any]:
    """The base config with every seed a study varies set to ``seed``, writing to ``results``:
    the workflow's (sampling), the world's (its identities and data sets), the world reference
    network's training and every dataset model's training.

    A seed already in effect (given or by default) is not written again, so the run whose
    seeds are the base's has the base's parameters exactly (Snakemake compares them in order).
    """
    from brownface import config as brownface_config

    effective = brownface_config.validate(copy.deepcopy(dict(base)), source="study base config")
    config = copy.deepcopy(dict(base))
    config["results"] = results
    for path in ((), ("world",), ("world", "reference_fr", "recipe"), ("training", "recipe")):
        given, default = config, effective
        for key in path:
            given, default = given.get(key, {}), default[key]
        if "seed" in given or default["seed"] != seed:
            section = config
            for key in path:
                section = section.setdefault(key, {})
            section["seed"] = seed
    return config


def judge(differences: np.ndarray) -> tuple[float, str]:
    """(one-sided p value, verdict) of paired differences (better - worse) over the seeds."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or np.allclose(d, d[0]):
        verdict = "unresolved" if len(d) < 2 or d[0] == 0 else ("holds" if d[0] > 0 else "reversed")
        return (0.0 if verdict != "unresolved" else 1.0), verdict
    p_greater = float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)
    p_less = float(stats.ttest_1samp(d, 0.0, alternative="less").pvalue)
    if p_greater < ALPHA:
        return p_greater, "holds"
    if p_less < ALPHA:
        return p_less, "reversed"
    return p_greater, "unresolved"


def claim_table(long: pd.DataFrame, claims: Sequence[Claim], seeds: Sequence[int]) -> pd.DataFrame:
    """One line per (claim, column): the per-seed differences, their mean and std, p, verdict."""
    lines = []
    for claim in claims:
        for column in long["column"].unique():
            values = long[long["column"] == column].set_index("model")["value"]
            diffs = np.array(
                [
                    values[f"{claim.better}@seed{s}"] - values[f"{claim.worse}@seed{s}"]
                    for s in seeds
                ]
            )
            p, verdict = judge(diffs)
            lines.append(
                dict(
                    claim=claim.what,
                    better=claim.better,
                    worse=claim.worse,
                    column=column,
                    mean_diff=diffs.mean(),
                    std_diff=diffs.std(ddof=1) if len(diffs) > 1 else np.nan,
                    p=p,
                    verdict=verdict,
                    diffs=" ".join(f"{x:+.2f}" for x in diffs),
                )
            )
    return pd.DataFrame(lines)


def study_report(
    runs: Mapping[int, Sequence[str | Path]],  # seed -> that run's evaluation JSONs
    config: Mapping[str, Any],  # the validated base config
    out: str | Path,  # the study's directory
) -> pd.DataFrame:
    """study_table.{md,csv,tex} (datasets over the seeds) and claims.{md,csv}."""
    out = Path(out)
    seeds = sorted(runs)
    records: Records = {}
    for seed in seeds:
        records.update(index_results(runs[seed], suffix=f"@seed{seed}"))
    names = list(config["datasets"])
    rows = [
        TableRow(f"{name} ({len(seeds)} seeds)", tuple(f"{name}@seed{s}" for s in seeds))
        for name in names
    ]
    # The world's network is retrained per seed; a real_models checkpoint is the same file in
    # every run (its spread is 0), so its row keeps its label.
    real = [(name, m["label"]) for name, m in config.get("real_models", {}).items()]
    if any(key[0].startswith(REFERENCE_FR_NAME + "@") for key in records):
        real.insert(0, (REFERENCE_FR_NAME, f"real data (world identities, {len(seeds)} seeds)"))
    for k, (name, label) in enumerate(real):
        rows.insert(k, TableRow(label, tuple(f"{name}@seed{s}" for s in seeds), True))
    cols = columns(
        list(config["verification_sets"]), list(config["ijb_sets"]), config["ijb"]["report_fars"]
    )
    report_table(
        records,
        rows,
        cols,
        csv=out / "study_table.csv",
        markdown=out / "study_table.md",
        latex=out / "study_table.tex",
    )
    long = cell_values(records, rows, cols)
    claims = claim_table(long, paper_claims(config), seeds)
    with atomic_path(out / "claims.csv") as tmp:
        claims.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
    shown = claims.assign(
        mean_diff=claims["mean_diff"].map("{:+.2f}".format),
        std_diff=claims["std_diff"].map("{:.2f}".format),
        p=claims["p"].map("{:.3f}".format),
    )
    ordering = [MEAN_COLUMN, *[c.label for c in cols if c.label != MEAN_COLUMN]]
    shown["column"] = pd.Categorical(
        shown["column"], [c for c in ordering if c in set(shown["column"])]
    )
    shown = shown.sort_values(["claim", "column"], kind="stable")
    text = shown[
        ["claim", "better", "worse", "column", "diffs", "mean_diff", "std_diff", "p", "verdict"]
    ]
    with atomic_path(out / "claims.md") as tmp:
        Path(tmp).write_text(text.to_markdown(index=False) + "\n", encoding="utf-8")
    return claims


def run_study(
    config_path: str | Path,
    seeds: Sequence[int],
    out: str | Path,
    *,
    cores: int,
    snakefile: str | Path,
    extra: Sequence[str] = (),
) -> pd.DataFrame:
    """The workflow once per seed (in ``<out>/seed<k>/``; rerunning resumes, and a finished
    run is nothing to do), then the study's table and claims; wall times in ``times.csv``."""
    from brownface import config as brownface_config

    if len(set(seeds)) < 2:
        raise UserError("study: needs at least two distinct seeds")
    base = brownface_config.read_yaml(config_path)
    out = Path(out)
    runs, times = {}, []
    for seed in seeds:
        # Each run is a workflow directory of its own (config/config.yaml, results/, .snakemake/),
        # so nothing of the base directory's config or state leaks into it.
        run_dir = out / f"seed{seed}"
        cfg = seed_config(base, seed, "results")
        brownface_config.validate(copy.deepcopy(cfg), source=f"study seed {seed}")
        cfg_path = run_dir / "config" / "config.yaml"
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        cmd = [
            sys.executable, "-m", "snakemake", "-s", str(Path(snakefile).resolve()),
            "-d", str(run_dir), "--cores", str(cores), "--rerun-incomplete", *extra,
        ]  # fmt: skip
        log.info("study seed %d: %s", seed, " ".join(cmd))
        start = time.monotonic()
        if subprocess.run(cmd).returncode != 0:
            raise UserError(f"study seed {seed}: the workflow failed (see {run_dir}/results/logs)")
        times.append(dict(seed=seed, seconds=round(time.monotonic() - start, 1)))
        runs[seed] = sorted((run_dir / "results" / "evaluation").glob("*/*.json"))
    with atomic_path(out / "times.csv") as tmp:
        pd.DataFrame(times).to_csv(tmp, index=False, lineterminator="\n")
    config = brownface_config.validate(copy.deepcopy(base), source=str(config_path))
    return study_report(runs, config, out)
