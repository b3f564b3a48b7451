"""Adapter: merge the projection shards (disjoint and complete)."""

from brownface.covariates.reader import SubsetRules
from brownface.covariates.stages import merge_projections
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        merge_projections(
            list(snakemake.input.shards),
            SubsetRules.from_config(snakemake.params.subsets),
            root=snakemake.input.root,
            landmarks=snakemake.input.landmarks,
            out=snakemake.output.projections,
            quality=snakemake.output.quality,
        )
