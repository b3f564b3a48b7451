"""Stage entry points of the covariates rules: project Multi-PIE shards, merge, fit the SVMs."""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.covariates.projection import (
    ProjectionParams,
    merge_projection_shards,
    plan_projection,
    project_shard,
)
from brownface.covariates.quality import projection_quality, quality_summary
from brownface.covariates.reader import SubsetRules
from brownface.covariates.svm import fit_covariates
from brownface.models.factory import build_generator, resolve_device
from brownface.store import ProjectionStore, atomic_path

log = logging.getLogger(__name__)


def run_projection(
    generator: dict,
    world: dict,
    root: str,
    landmarks: str,
    out: str,
    shard: int,
    shards: int,
    projection: dict,
    subsets: dict,
    seed: int,
    device: str,
    checkpoint: str,
) -> None:
    """Align and project one shard of the Multi-PIE training images."""
    gen = build_generator({"generator": generator, "world": world}, resolve_device(device))
    provenance = {
        "generator": gen.spec(),
        "projection": projection,
        "subsets": subsets,
        "seed": seed,
    }
    project_shard(
        gen,
        root,
        landmarks,
        out,
        shard=shard,
        shards=shards,
        rules=SubsetRules.from_config(subsets),
        params=ProjectionParams.from_config(projection),
        seed=seed,
        checkpoint=checkpoint,
        provenance=provenance,
    )


def run_merge(
    shards: list[str],
    root: str,
    landmarks: str,
    subsets: dict,
    out: str,
    quality: str | None = None,  # projection_quality.csv: reconstruction per camera/flash/...
) -> None:
    """Merge the shards (every planned image exactly once) and report the reconstructions."""
    expected = len(plan_projection(root, landmarks, SubsetRules.from_config(subsets)).images)
    merge_projection_shards([Path(s) for s in shards], Path(out), expected=expected)
    table = projection_quality(ProjectionStore.read(out))
    log.info("%s", quality_summary(table))
    if quality is not None:
        with atomic_path(quality) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")


def run_fit(projections: str, out: str, subsets: dict, folds: int, seed: int) -> None:
    """The seven SVM directions into covariates.h5, with their cross-validated balanced accuracy."""
    store = fit_covariates(
        projections,
        out,
        SubsetRules.from_config(subsets),
        seed=seed,
        folds=folds,
        provenance={"subsets": subsets},
    )
    for name, acc in zip(store.name, store.accuracy):
        log.info("direction %s: cross-validated balanced accuracy %.3f", name, acc)
