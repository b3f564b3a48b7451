"""Adapter: a dataset's card.json."""

from brownface.dataset.render import RenderSettings
from brownface.dataset.stages import write_dataset_card
from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        write_dataset_card(
            GeneratorSpec.from_dict(p.generator),
            FRSpec.from_dict(p.reference_fr),
            RenderSettings.from_config(p.render),
            dataset=snakemake.wildcards.dataset,
            recipes=p.recipes,
            seed=p.seed,
            image_size=p.image_size,
            identities=snakemake.input.identities,
            variations=snakemake.input.variations,
            rendered=snakemake.input.rendered,
            out=snakemake.output.card,
        )
