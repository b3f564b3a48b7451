"""Adapter: one shard of a dataset's variations."""

from brownface.runlog import run_stage
from brownface.sampling.stages import run_variations

if __name__ == "__main__":
    p = snakemake.params
    run_stage(
        snakemake,
        run_variations,
        p.recipe,
        dataset=snakemake.wildcards.dataset,
        seed=p.seed,
        shard=int(snakemake.wildcards.shard),
        shards=p.shards,
        identities=snakemake.input.identities,
        covariates=snakemake.input.covariates[0] if snakemake.input.covariates else None,
        generator=p.generator,
        world=p.world,
        reference_fr=p.reference_fr,
        device=p.device,
        out=snakemake.output.shard,
        stats=snakemake.output.stats,
        checkpoint=p.checkpoint,
    )
