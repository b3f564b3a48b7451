"""Adapter: the world contact sheet."""

from pathlib import Path

from brownface.models.factory import world_generator
from brownface.runlog import run_stage
from brownface.world.sheet import world_sheet


def plot_world_sheet(world: dict, out: str) -> None:
    world_sheet(world_generator(world).renderer, world["seed"], Path(out))


if __name__ == "__main__":
    run_stage(snakemake, plot_world_sheet, snakemake.params.world, out=snakemake.output.sheet)
