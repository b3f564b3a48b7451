"""Adapter: link a dataset's render shards into its rendered/ root with one index.csv."""

from brownface.dataset.stages import merge_render_shards
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        merge_render_shards(list(snakemake.input.shards), out_root=snakemake.output.root)
