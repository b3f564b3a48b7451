"""Adapter: the model x benchmark verification table."""

from brownface.report.tables import verification_table
from brownface.runlog import run_stage

if __name__ == "__main__":
    run_stage(
        snakemake,
        verification_table,
        list(snakemake.input.results),
        csv=snakemake.output.csv,
        markdown=snakemake.output.markdown,
        latex=snakemake.output.latex,
    )
