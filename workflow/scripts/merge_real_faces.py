"""Adapter: merge a face collection's embedding shards into its embeddings store."""

from brownface.leakage.stages import merge_real_faces
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    with snakemake_job(snakemake):
        merge_real_faces(list(snakemake.input.shards), out=snakemake.output.embeddings)
