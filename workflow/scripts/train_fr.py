"""Adapter: train an FR model on one dataset (resumes from its checkpoint)."""

from pathlib import Path

from brownface.runlog import snakemake_job
from brownface.train.recipe import TrainRecipe
from brownface.train.stages import train_fr

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        train_fr(
            TrainRecipe.from_config(p.recipe),
            name=snakemake.wildcards.dataset,
            data_root=snakemake.input.data,
            out_dir=Path(snakemake.output.model).parent,
            checkpoint=p.checkpoint,
            validation=p.validation,
            device=p.device,
        )
