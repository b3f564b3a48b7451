"""Adapter: the world's Multi-PIE-layout set."""

from brownface.runlog import snakemake_job
from brownface.world.stages import build_world_multipie

if __name__ == "__main__":
    out = snakemake.output
    with snakemake_job(snakemake):
        build_world_multipie(snakemake.params.world, root=out.root, landmarks=out.landmarks)
