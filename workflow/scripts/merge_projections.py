"""Adapter: merge the projection shards (disjoint and complete)."""

from brownface.covariates.stages import run_merge
from brownface.runlog import run_stage

if __name__ == "__main__":
    run_stage(
        snakemake,
        run_merge,
        list(snakemake.input.shards),
        root=snakemake.input.root,
        landmarks=snakemake.input.landmarks,
        subsets=snakemake.params.subsets,
        out=snakemake.output.projections,
        quality=snakemake.output.quality,
    )
