"""Adapter: the world's lfw.bin, LFW tree and pairs.txt."""

from brownface.runlog import snakemake_job
from brownface.world.stages import build_world_lfw

if __name__ == "__main__":
    out = snakemake.output
    with snakemake_job(snakemake):
        build_world_lfw(
            snakemake.params.world, lfw_bin=out.lfw_bin, lfw_tree=out.tree, lfw_pairs=out.pairs
        )
