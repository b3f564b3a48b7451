"""Adapter: the report's nearest-real angle histograms (leakage)."""

from brownface.report.stages import leakage_figure
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        leakage_figure(
            snakemake.params.measures, snakemake.output.histograms, snakemake.params.order
        )
