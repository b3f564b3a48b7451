"""Adapter: render a dataset's variations to aligned images plus index.csv."""

from brownface.dataset.stages import render_dataset
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        render_dataset(
            GeneratorSpec.from_dict(p.generator),
            variations=snakemake.input.variations,
            out_root=snakemake.output.root,
            image_size=p.image_size,
            device=p.device,
        )
