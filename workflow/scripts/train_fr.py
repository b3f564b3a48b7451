"""Adapter: train an FR model on one dataset (resumes from its checkpoint)."""

from pathlib import Path

from brownface.runlog import run_stage
from brownface.train.run import train_fr

if __name__ == "__main__":
    run_stage(
        snakemake,
        train_fr,
        snakemake.params.recipe,
        data_root=snakemake.input.data,
        out_dir=Path(snakemake.output.model).parent,
        checkpoint=snakemake.params.checkpoint,
        validation=snakemake.params.validation,
        device=snakemake.params.device,
    )
