"""Adapter: the world reference FR's training images."""

from brownface.runlog import snakemake_job
from brownface.world.stages import build_world_fr_train

if __name__ == "__main__":
    with snakemake_job(snakemake):
        build_world_fr_train(snakemake.params.world, root=snakemake.output.root)
