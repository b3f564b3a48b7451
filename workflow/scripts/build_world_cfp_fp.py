"""Adapter: the world's cfp_fp.bin."""

from brownface.runlog import snakemake_job
from brownface.world.stages import build_world_cfp_fp

if __name__ == "__main__":
    with snakemake_job(snakemake):
        build_world_cfp_fp(snakemake.params.world, cfp_fp_bin=snakemake.output.cfp_fp_bin)
