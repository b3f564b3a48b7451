"""Adapter: train an FR model on one dataset (resumes from its checkpoint), on training.gpus
ranks (torchrun when more than one)."""

from pathlib import Path

from brownface.runlog import snakemake_job
from brownface.train.launch import run_training

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        job = {
            "recipe": dict(p.recipe),
            "name": snakemake.wildcards.dataset,
            "data_root": snakemake.input.data,
            "out_dir": str(Path(snakemake.output.model).parent),
            "checkpoint": p.checkpoint,
            "validation": dict(p.validation),
            "device": p.device,
        }
        run_training(job, gpus=p.get("gpus", 1), threads=snakemake.threads)
