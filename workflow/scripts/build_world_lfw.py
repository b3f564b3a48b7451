"""Adapter: the world's lfw.bin, LFW tree and pairs.txt."""

from brownface.runlog import run_stage
from brownface.world.build import build_world_lfw

if __name__ == "__main__":
    run_stage(
        snakemake,
        build_world_lfw,
        snakemake.params.world,
        lfw_bin=snakemake.output.lfw_bin,
        lfw_tree=snakemake.output.tree,
        lfw_pairs=snakemake.output.pairs,
    )
