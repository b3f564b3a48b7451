"""Adapter: the world reference FR's training images."""

from brownface.runlog import run_stage
from brownface.world.build import build_world_fr_train

if __name__ == "__main__":
    run_stage(snakemake, build_world_fr_train, snakemake.params.world, root=snakemake.output.root)
