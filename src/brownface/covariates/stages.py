"""Stage entry points of the covariates rules, named after them: ``project_multipie`` (one
shard), ``merge_projections`` and ``fit_covariates``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from brownface.covariates.projection import ProjectionParams, plan_projection, project_shard
from brownface.covariates.quality import projection_quality, quality_summary
from brownface.covariates.reader import SubsetRules
from brownface.covariates.svm import fit_covariate_directions
from brownface.models.device import resolve_device
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.store import ProjectionStore, atomic_path, merge_shards

log = logging.getLogger(__name__)


def project_multipie(
    generator: GeneratorSpec,  # truncation_psi and noise_mode unused (constant noise here)
    params: ProjectionParams,
    rules: SubsetRules,
    *,
    root: str,  # Multi-PIE root
    landmarks: str,  # its 5-point landmark CSV
    out: str,  # this shard's projections store
    shard: int,
    shards: int,
    seed: int,
    device: str,
    checkpoint: str,  # this shard's resume file (kept after the run)
) -> None:
    """Align and project one shard of the Multi-PIE training images."""
    gen = load_generator(replace(generator, noise_mode="const"), resolve_device(device))
    project_shard(
        gen,
        root,
        landmarks,
        out,
        shard=shard,
        shards=shards,
        rules=rules,
        params=params,
        seed=seed,
        checkpoint=checkpoint,
    )


def merge_projections(
    shards: list[str],
    rules: SubsetRules,
    *,
    root: str,
    landmarks: str,
    out: str,
    quality: str,  # projection_quality.csv: reconstruction per camera, flash and expression
) -> None:
    """Merge the shards (every planned image exactly once) and report the reconstructions."""
    expected = len(plan_projection(root, landmarks, rules).images)
    merge_shards([Path(s) for s in shards], Path(out), expected=expected)
    table = projection_quality(ProjectionStore.read(out))
    log.info("%s", quality_summary(table))
    with atomic_path(quality) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def fit_covariates(
    rules: SubsetRules, *, projections: str, out: str, folds: int, seed: int
) -> None:
    """The seven SVM directions into covariates.h5, with their cross-validated balanced accuracy."""
    store = fit_covariate_directions(projections, out, rules, seed=seed, folds=folds)
    for name, acc in zip(store.name, store.accuracy):
        log.info("direction %s: cross-validated balanced accuracy %.3f", name, acc)
