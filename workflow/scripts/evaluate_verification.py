"""Adapter: score one FR model on one verification set."""

from brownface.runlog import run_stage
from brownface.train.run import evaluate_verification

if __name__ == "__main__":
    run_stage(
        snakemake,
        evaluate_verification,
        snakemake.input.model,
        snakemake.input.bin,
        snakemake.output.result,
        name=snakemake.wildcards.vset,
        device=snakemake.params.device,
    )
