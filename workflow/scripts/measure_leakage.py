"""Adapter: measure one dataset's identities against one real_faces collection."""

from brownface.leakage.stages import measure_dataset_leakage
from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        measure_dataset_leakage(
            snakemake.input.identities,
            snakemake.input.real,
            snakemake.input.verification_set,
            FRSpec.from_dict(p.reference_fr),
            fars=list(p.fars),
            k=p.closest,
            out=snakemake.output.measure,
            generator=GeneratorSpec.from_dict(p.generator),
            collection=p.collection,
            pairs_out=snakemake.output.pairs,
            truth=p.truth,
            title=f"{snakemake.wildcards.dataset} vs {snakemake.wildcards.faces}",
            variations=str(snakemake.input.variations) if snakemake.input.variations else None,
            device=p.device,
        )
