"""Adapter: one shard (identity range) of a dataset's images plus its partial index.csv."""

from brownface.dataset.render import RenderSettings
from brownface.dataset.stages import render_dataset
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        render_dataset(
            GeneratorSpec.from_dict(p.generator),
            RenderSettings.from_config(p.render),
            variations=snakemake.input.variations,
            out_root=snakemake.output.shard,
            image_size=p.image_size,
            shard=int(snakemake.wildcards.shard),
            shards=p.shards,
            device=p.device,
        )
