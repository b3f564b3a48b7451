"""Adapter: the landmark shards into one 5-point file, one 68-point file and one report."""

from brownface.covariates.stages import merge_landmarks
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        merge_landmarks(
            points=list(snakemake.input.points),
            reports=list(snakemake.input.reports),
            landmarks=snakemake.output.landmarks,
            landmarks68=snakemake.output.landmarks68,
            report=snakemake.output.report,
        )
