"""Adapter: the paper's table from every evaluation result."""

from brownface.report.stages import table
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p, out = snakemake.params, snakemake.output
    with snakemake_job(snakemake):
        table(
            list(snakemake.input.results),
            p.rows,
            verification_sets=p.verification_sets,
            ijb_sets=p.ijb_sets,
            fars=p.fars,
            csv=out.csv,
            markdown=out.markdown,
            latex=out.latex,
            html=out.html,
            leakage=list(snakemake.input.leakage),
            leakage_collections=p.leakage_collections,
            leakage_far=p.leakage_far,
        )
