"""Adapter: the identity-capacity table and figure of one recipe."""

from brownface.leakage.stages import identity_capacity
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        identity_capacity(
            p.stores,
            ict=p.ict,
            generator=GeneratorSpec.from_dict(p.generator),
            table=snakemake.output.table,
            figure=snakemake.output.figure,
            label=p.label,
            device=p.device,
        )
