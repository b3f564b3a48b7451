"""Adapter: the world's IJB-C-layout template set."""

from brownface.runlog import snakemake_job
from brownface.world.stages import build_world_ijbc

if __name__ == "__main__":
    with snakemake_job(snakemake):
        build_world_ijbc(snakemake.params.world, root=snakemake.output.root)
