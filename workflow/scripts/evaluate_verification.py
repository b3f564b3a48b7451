"""Adapter: score one FR model on one verification set."""

from brownface.evaluate.stages import evaluate_verification
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        evaluate_verification(
            snakemake.params.model,
            snakemake.params.benchmark,
            snakemake.output.result,
            name=snakemake.wildcards.vset,
            model_name=snakemake.wildcards.model,
            device=snakemake.params.device,
        )
