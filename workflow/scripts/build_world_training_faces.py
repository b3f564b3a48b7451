"""Adapter: the world generator's training faces (generator frames, one folder per person)."""

from brownface.runlog import snakemake_job
from brownface.world.stages import build_world_training_faces

if __name__ == "__main__":
    with snakemake_job(snakemake):
        build_world_training_faces(snakemake.params.world, root=snakemake.output.root)
