"""Adapter: the model x benchmark verification table."""

from brownface.report.stages import report_verification
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        report_verification(
            list(snakemake.input.results),
            csv=snakemake.output.csv,
            markdown=snakemake.output.markdown,
            latex=snakemake.output.latex,
        )
