"""Adapter: the world's cfp_fp.bin."""

from brownface.runlog import run_stage
from brownface.world.build import build_world_cfp_fp

if __name__ == "__main__":
    run_stage(
        snakemake,
        build_world_cfp_fp,
        snakemake.params.world,
        cfp_fp_bin=snakemake.output.cfp_fp_bin,
    )
