"""Adapter: raw IJB features of one shard's image range."""

from brownface.evaluate.stages import ijb_features
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        ijb_features(
            p.model,
            snakemake.input.root,
            snakemake.output.features,
            name=snakemake.wildcards.ijb,
            model_name=snakemake.wildcards.model,
            shard=p.shard,
            shards=p.shards,
            partial=p.partial,
            batch_size=p.batch_size,
            workers=p.workers,
            device=p.device,
        )
