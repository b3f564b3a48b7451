"""Adapter: project one shard of the Multi-PIE training images into W."""

from brownface.covariates.stages import run_projection
from brownface.runlog import run_stage

if __name__ == "__main__":
    p = snakemake.params
    run_stage(
        snakemake,
        run_projection,
        p.generator,
        world=p.world,
        root=snakemake.input.root,
        landmarks=snakemake.input.landmarks,
        out=snakemake.output.shard,
        shard=int(snakemake.wildcards.shard),
        shards=p.shards,
        projection=p.projection,
        subsets=p.subsets,
        seed=p.seed,
        device=p.device,
        checkpoint=p.checkpoint,
    )
