"""Stage entry points of the report rules: the paper's table and its figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from brownface.report.tables import (
    TableRow,
    columns,
    index_leakage,
    index_results,
    report_table,
)


def table(
    results: Sequence[str],  # every evaluation JSON of the table's models
    rows: Sequence[Mapping],  # {label, models, real} per row, in order
    *,
    verification_sets: Sequence[str],
    ijb_sets: Sequence[str],
    fars: Sequence[float],
    csv: str,
    markdown: str,
    latex: str,
    html: str | None = None,
    leakage: Sequence[str] = (),  # every leakage measure (results/leakage/<collection>/*.json)
    leakage_collections: Sequence[str] = (),  # a column each, in order
    leakage_far: float | None = None,  # the FAR of the leakage columns
) -> None:
    """Datasets x benchmarks (and leakage), in CSV, Markdown, LaTeX and HTML
    (``brownface.report.tables``)."""
    table_rows = [TableRow(r["label"], tuple(r["models"]), bool(r.get("real"))) for r in rows]
    cols = columns(
        list(verification_sets), list(ijb_sets), list(fars), list(leakage_collections), leakage_far
    )
    records = {**index_results(results), **index_leakage(leakage)}
    report_table(records, table_rows, cols, csv=csv, markdown=markdown, latex=latex, html=html)


def leakage_figure(
    measures: Mapping[str, Mapping[str, str]],  # collection -> dataset -> measure JSON
    out: str,
    order: Sequence[str] = (),
) -> None:
    """The nearest-real angle histograms of every dataset against every real collection."""
    from brownface.report.figures import leakage_histograms

    leakage_histograms(measures, out, order=order)


def figures(
    *,
    roc: Mapping[str, Mapping[str, str]],  # IJB set -> {model: ROC CSV}
    roc_out: Mapping[str, str],  # IJB set -> PNG
    stores: Mapping[str, str],  # dataset -> variations.h5
    identity_stats: Mapping[str, str],  # identity recipe -> stats.csv
    variation_stats: Mapping[str, Sequence[str]],  # dataset -> shard stats CSVs
    train_logs: Mapping[str, str],  # model -> train_log.csv
    ict_deg: float | None,
    angles_out: str,
    sampling_out: str,
    training_out: str,
) -> None:
    """The report's figures: IJB ROC per set, angle histograms, sampler statistics over
    iterations, FR training curves; one colour per dataset across all of them."""
    from brownface.report.figures import (
        angle_histograms,
        roc_figure,
        sampling_stats_figure,
        training_curves,
    )

    order = list(stores)
    for name, curves in roc.items():
        title = f"{name[:3].upper()}-{name[3:].upper()} 1:1 verification"
        roc_figure(curves, roc_out[name], title=title, order=order)
    angle_histograms(stores, angles_out, ict_deg=ict_deg, order=order)
    sampling_stats_figure(
        identity_stats,
        variation_stats,
        sampling_out,
        ict_deg=ict_deg,
        order=order,
    )
    training_curves(train_logs, training_out, order=order)
