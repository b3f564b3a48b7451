"""Adapter: render a dataset's variations to aligned images plus index.csv."""

from brownface.dataset.render import render_dataset
from brownface.runlog import run_stage

if __name__ == "__main__":
    run_stage(
        snakemake,
        render_dataset,
        snakemake.params.generator,
        world=snakemake.params.world,
        variations=snakemake.input.variations,
        out_root=snakemake.output.root,
        image_size=snakemake.params.image_size,
    )
