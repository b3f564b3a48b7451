"""Adapter: embed one shard of a face collection (config real_faces.<name>)."""

from brownface.leakage.embed import EmbedParams
from brownface.leakage.stages import embed_real_faces
from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    c = p.collection
    with snakemake_job(snakemake):
        embed_real_faces(
            c["source"],
            c["path"],
            FRSpec.from_dict(p.reference_fr),
            GeneratorSpec.from_dict(p.generator) if p.generator else None,
            shard=int(snakemake.wildcards.shard),
            shards=c["shards"],
            params=EmbedParams(batch_size=c["batch_size"], checkpoint_every=c["checkpoint_every"]),
            out=snakemake.output.shard,
            checkpoint=p.checkpoint,
            device=p.device,
        )
