"""Adapter: the world's IJB-C-layout template set."""

from brownface.runlog import run_stage
from brownface.world.build import build_world_ijbc

if __name__ == "__main__":
    run_stage(snakemake, build_world_ijbc, snakemake.params.world, root=snakemake.output.root)
