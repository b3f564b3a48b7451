"""Adapter: one shard of a dataset's variations."""

from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job
from brownface.sampling.dispersion import VariationParams
from brownface.sampling.stages import sample_variations

if __name__ == "__main__":
    p, dataset = snakemake.params, snakemake.wildcards.dataset
    covariates = snakemake.input.covariates
    with snakemake_job(snakemake):
        sample_variations(
            GeneratorSpec.from_dict(p.generator),
            FRSpec.from_dict(p.reference_fr),
            VariationParams.from_config(p.recipe, key=f"variations.{p.recipe_name}"),
            dataset=dataset,
            seed=p.seed,
            shard=int(snakemake.wildcards.shard),
            shards=p.shards,
            identities=snakemake.input.identities,
            covariates=covariates[0] if covariates else None,
            device=p.device,
            out=snakemake.output.shard,
            stats=snakemake.output.stats,
            checkpoint=p.checkpoint,
        )
