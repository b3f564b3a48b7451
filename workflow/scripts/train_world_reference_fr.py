"""Adapter: train the world's reference FR network (resumes from its checkpoint)."""

from pathlib import Path

from brownface.runlog import snakemake_job
from brownface.train.recipe import TrainRecipe
from brownface.world.stages import train_world_reference_fr

if __name__ == "__main__":
    p, inputs = snakemake.params, snakemake.input
    with snakemake_job(snakemake):
        train_world_reference_fr(
            TrainRecipe.from_config(p.recipe, key="world.reference_fr.recipe"),
            data_root=inputs.data,
            out_dir=Path(snakemake.output.model).parent,
            checkpoint=p.checkpoint,
            validation={"lfw": inputs.lfw, "cfp_fp": inputs.cfp_fp},
            device=p.device,
        )
