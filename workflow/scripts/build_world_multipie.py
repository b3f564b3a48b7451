"""Adapter: the world's Multi-PIE-layout set."""

from brownface.runlog import run_stage
from brownface.world.build import build_world_multipie

if __name__ == "__main__":
    run_stage(
        snakemake,
        build_world_multipie,
        snakemake.params.world,
        root=snakemake.output.root,
        landmarks=snakemake.output.landmarks,
    )
