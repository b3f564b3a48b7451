"""Adapter: a dataset's contact sheet (identities x reference and variations)."""

from brownface.dataset.stages import plot_contact_sheet
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        plot_contact_sheet(snakemake.input.rendered, out=snakemake.output.sheet)
