"""Adapter: the identities of one recipe."""

from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job
from brownface.sampling.langevin import IdentityParams
from brownface.sampling.stages import sample_identities

if __name__ == "__main__":
    p, name = snakemake.params, snakemake.wildcards.identities
    with snakemake_job(snakemake):
        sample_identities(
            GeneratorSpec.from_dict(p.generator),
            FRSpec.from_dict(p.reference_fr),
            IdentityParams.from_config(p.recipe, key=f"identities.{name}"),
            name=name,
            seed=p.seed,
            device=p.device,
            out=snakemake.output.identities,
            stats=snakemake.output.stats,
            checkpoint=p.checkpoint,
        )
