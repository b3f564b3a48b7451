"""One IJB evaluation from feature caches to its three outputs: metrics JSON, ROC CSV, ROC PNG.

The JSON holds the 1:1 table (TAR at FAR 1e-6 .. 1e-1, fractions), the switches it was scored
with, the counts, and, when the benchmark ships its 1:N lists, rank-1/5/10 and TPIR at FPIR
0.01 and 0.1. The ROC CSV (``far,tar,threshold``) is downsampled on a log FAR axis for plots.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from brownface.evaluate.ijb import has_identification, read_identification, read_ijb
from brownface.evaluate.ijb_features import read_features
from brownface.evaluate.ijb_score import (
    FARS,
    IJBSwitches,
    identification,
    image_features,
    pair_scores,
    roc_points,
    tar_at_far,
    template_features,
)
from brownface.store import atomic_path


def far_key(far: float) -> str:
    """The JSON key of a FAR or FPIR (``1e-06``, ``0.0001``, ``0.1``)."""
    return format(float(far), "g")


def score_ijb(
    root: str | Path,
    features: list[str | Path],  # the shards' feature caches, in order
    *,
    name: str,  # ijbb or ijbc (the meta files' prefix)
    switches: IJBSwitches | None = None,  # None = the standard protocol
) -> tuple[dict[str, Any], Any]:
    """The metrics of one model on one benchmark, and its downsampled ROC table."""
    switches = switches or IJBSwitches()
    meta = read_ijb(root, prefix=name)
    raw = read_features(list(features), len(meta.image_names))
    feats = image_features(raw, meta.scores, switches)
    templates = template_features(feats, meta.template_ids, meta.media_ids)
    scores = pair_scores(templates, meta.t1, meta.t2)
    metrics: dict[str, Any] = {
        "benchmark": name,
        "protocol": "ijb 1:1" + (" and 1:N" if has_identification(root, name) else ""),
        "switches": asdict(switches),
        "n_images": len(meta.image_names),
        "n_templates": len(templates.templates),
        "n_pairs": len(scores),
        "n_genuine": int(meta.labels.sum()),
        "tar_at_far": {far_key(k): v for k, v in tar_at_far(meta.labels, scores, FARS).items()},
        "identification": None,
    }
    if has_identification(root, name):
        lists = read_identification(root, name)
        result = identification(
            templates,
            lists.gallery_templates,
            lists.gallery_subjects,
            lists.probe_templates,
            lists.probe_subjects,
        )
        metrics["identification"] = {
            **{f"rank_{k}": v for k, v in result.ranks.items()},
            "tpir_at_fpir": {far_key(k): v for k, v in result.tpir_at_fpir.items()},
            "n_probes": result.n_probes,
            "n_gallery": result.n_gallery,
        }
    return metrics, roc_points(meta.labels, scores)


def write_ijb_outputs(
    metrics: dict[str, Any],
    roc: Any,  # the roc_points table
    *,
    model: str,
    provenance: dict[str, Any],
    metrics_path: str | Path,
    roc_csv: str | Path,
    roc_png: str | Path,
) -> None:
    """The three outputs, each atomically; same inputs, same bytes."""
    from brownface.report.figures import roc_figure  # matplotlib only where a figure is drawn

    data = {"model": model, **metrics, "provenance": provenance}
    text = json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"
    with atomic_path(roc_csv) as tmp:
        roc.to_csv(tmp, index=False, float_format="%.8g", lineterminator="\n")
    title = f"{metrics['benchmark'].upper()} 1:1, {model}"
    roc_figure({model: Path(roc_csv)}, Path(roc_png), title=title)
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def tar_table(metrics: dict[str, Any]) -> dict[float, float]:
    """The TAR at FAR table of a metrics JSON, keyed by float FAR."""
    return {float(k): float(v) for k, v in metrics["tar_at_far"].items() if np.isfinite(v)}
