# Leakage control: face collections (config real_faces, e.g. the generator's training faces)
# embedded with the reference FR, sharded by image range, into embeddings stores that an
# identities recipe can avoid.


rule embed_real_faces:
    input:
        collection=lambda wc: config["real_faces"][wc.faces]["path"],
        fr=config["reference_fr"]["checkpoint"],
        generator=lambda wc: (
            generator_files()
            if config["real_faces"][wc.faces]["source"] == "generator_frames"
            else []
        ),
    output:
        shard=results("leakage", "{faces}", "shard{shard}.h5"),
    log:
        logs("leakage", "{faces}", "shard{shard}.log"),
    benchmark:
        benchmarks("leakage", "{faces}", "shard{shard}.tsv")
    wildcard_constraints:
        faces=REAL_FACES_NAMES,
        shard=r"\d{3}",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("embed_real_faces")
    resources:
        **stage_resources("embed_real_faces"),
    params:
        collection=lambda wc: config["real_faces"][wc.faces],
        generator=real_faces_generator,
        reference_fr=REFERENCE_FR,
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_of(output.shard),
    script:
        "../scripts/embed_real_faces.py"


rule merge_real_faces:
    input:
        shards=lambda wc: expand(
            results("leakage", wc.faces, "shard{shard:03d}.h5"),
            shard=range(config["real_faces"][wc.faces]["shards"]),
        ),
    output:
        embeddings=results("leakage", "{faces}", "embeddings.h5"),
    log:
        logs("leakage", "{faces}", "merge.log"),
    wildcard_constraints:
        faces=REAL_FACES_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("merge_real_faces")
    resources:
        **stage_resources("merge_real_faces"),
    script:
        "../scripts/merge_real_faces.py"


rule leakage:
    input:
        expand(results("leakage", "{faces}", "embeddings.h5"), faces=config["real_faces"]),


localrules:
    leakage,
