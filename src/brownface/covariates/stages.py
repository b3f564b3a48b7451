"""Stage entry points of the covariates rules, named after them: ``detect_landmarks`` (one
shard) and ``merge_landmarks`` for real Multi-PIE, ``project_multipie`` (one shard),
``merge_projections`` and ``fit_covariates``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from brownface.covariates.detect import (
    Detections,
    LandmarkDetector,
    read_points68,
    read_report,
    write_points68,
    write_report,
)
from brownface.covariates.landmarks import write_landmarks
from brownface.covariates.projection import ProjectionParams, plan_projection, project_shard
from brownface.covariates.quality import projection_quality, quality_summary
from brownface.covariates.reader import SubsetRules, read_multipie
from brownface.covariates.svm import fit_covariate_directions
from brownface.models.device import resolve_device
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.runlog import progress
from brownface.sharding import shard_range
from brownface.store import ProjectionStore, atomic_path, merge_shards

log = logging.getLogger(__name__)


def detect_landmarks(
    *,
    root: str,  # Multi-PIE root
    points: str,  # this shard's 68-point CSV
    report: str,  # this shard's skipped photos (path, problem)
    shard: int,
    shards: int,
    upsample: int,
    predictor: str | None,
) -> None:
    """dlib landmarks of one shard of the tree's photos (sorted by path); photos with no face
    or several are listed in ``report`` and skipped."""
    relpaths = sorted(read_multipie(root).relpaths())
    start, stop = shard_range(len(relpaths), shards, shard)
    detector = LandmarkDetector(predictor, upsample)
    found = Detections()
    bar = progress(stop - start, "detect", unit="img")
    for rel in relpaths[start:stop]:
        part = detector.detect_files(root, [rel])
        found.points68.update(part.points68)
        found.problems.update(part.problems)
        bar.update(1)
    bar.close()
    with atomic_path(points) as tmp_points, atomic_path(report) as tmp_report:
        write_points68(tmp_points, found.points68)
        write_report(tmp_report, found.problems)
    log.info(
        "landmarks of photos %d-%d: %d found, %d skipped", start, stop, len(found.points68),
        len(found.problems),
    )  # fmt: skip


def merge_landmarks(
    *,
    points: list[str],
    reports: list[str],
    landmarks: str,  # the 5-point CSV the projection reads
    landmarks68: str,  # every photo's 68 points
    report: str,  # every skipped photo and why
) -> None:
    """One 5-point file, one 68-point file and one report from the shards."""
    points68: dict = {}
    problems: dict = {}
    for path in points:
        points68.update(read_points68(path))
    for path in reports:
        problems.update(read_report(path))
    five = Detections(points68, problems).five()
    with atomic_path(landmarks) as t5, atomic_path(landmarks68) as t68, atomic_path(report) as tr:
        write_landmarks(t5, five)
        write_points68(t68, points68)
        write_report(tr, problems)
    total = len(points68) + len(problems)
    log.info(
        "landmarks: %d of %d photos, %d skipped (see %s)", len(five), total, len(problems), report
    )


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
