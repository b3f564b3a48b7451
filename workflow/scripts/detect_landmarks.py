"""Adapter: dlib landmarks of one shard of a real Multi-PIE tree."""

from brownface.covariates.stages import detect_landmarks
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        detect_landmarks(
            root=snakemake.input.root,
            points=snakemake.output.points,
            report=snakemake.output.report,
            shard=int(snakemake.wildcards.shard),
            shards=snakemake.params.shards,
            upsample=snakemake.params.upsample,
            predictor=snakemake.params.predictor,
        )
