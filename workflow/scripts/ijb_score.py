"""Adapter: IJB 1:1 and 1:N scores of one model from its feature shards."""

from brownface.evaluate.ijb_score import IJBSwitches
from brownface.evaluate.stages import ijb_score
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        ijb_score(
            snakemake.input.root,
            list(snakemake.input.features),
            name=snakemake.wildcards.ijb,
            switches=IJBSwitches(**snakemake.params.switches),
            metrics=snakemake.output.metrics,
            roc_csv=snakemake.output.roc_csv,
            roc_png=snakemake.output.roc_png,
        )
