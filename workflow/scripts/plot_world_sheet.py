"""Adapter: the world contact sheet."""

from brownface.runlog import snakemake_job
from brownface.world.stages import plot_world_sheet

if __name__ == "__main__":
    with snakemake_job(snakemake):
        plot_world_sheet(snakemake.params.world, out=snakemake.output.sheet)
