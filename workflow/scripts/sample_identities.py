"""Adapter: the identities of one recipe."""

from brownface.runlog import run_stage
from brownface.sampling.stages import run_identities

if __name__ == "__main__":
    p = snakemake.params
    run_stage(
        snakemake,
        run_identities,
        p.recipe,
        name=snakemake.wildcards.identities,
        seed=p.seed,
        generator=p.generator,
        world=p.world,
        reference_fr=p.reference_fr,
        device=p.device,
        out=snakemake.output.identities,
        stats=snakemake.output.stats,
        checkpoint=p.checkpoint,
    )
