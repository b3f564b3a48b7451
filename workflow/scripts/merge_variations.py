"""Adapter: merge a dataset's variation shards (checks they are disjoint and complete)."""

from brownface.runlog import snakemake_job
from brownface.sampling.stages import merge_variations

if __name__ == "__main__":
    with snakemake_job(snakemake):
        merge_variations(
            list(snakemake.input.shards),
            identities=snakemake.input.identities,
            out=snakemake.output.variations,
        )
