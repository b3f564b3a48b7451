"""Adapter: the identities of one recipe (torchrun ranks when its gpus is above 1)."""

from brownface.runlog import snakemake_job
from brownface.sampling.launch import run_identities

if __name__ == "__main__":
    p, name = snakemake.params, snakemake.wildcards.identities
    with snakemake_job(snakemake):
        job = {
            "generator": dict(p.generator),
            "reference_fr": dict(p.reference_fr),
            "recipe": dict(p.recipe),
            "name": name,
            "seed": p.seed,
            "device": p.device,
            "out": snakemake.output.identities,
            "stats": snakemake.output.stats,
            "checkpoint": p.checkpoint,
        }
        run_identities(job, threads=snakemake.threads)
