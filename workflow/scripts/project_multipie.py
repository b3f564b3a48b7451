"""Adapter: project one shard of the Multi-PIE training images into W."""

from brownface.covariates.projection import ProjectionParams
from brownface.covariates.reader import SubsetRules
from brownface.covariates.stages import project_multipie
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        project_multipie(
            GeneratorSpec.from_dict(p.generator),
            ProjectionParams.from_config(p.projection),
            SubsetRules.from_config(p.subsets),
            root=snakemake.input.root,
            landmarks=snakemake.input.landmarks,
            out=snakemake.output.shard,
            shard=int(snakemake.wildcards.shard),
            shards=p.shards,
            seed=p.seed,
            device=p.device,
            checkpoint=p.checkpoint,
        )
