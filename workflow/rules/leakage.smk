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


rule measure_leakage:
    input:
        identities=lambda wc: results(
            "identities", RUNS[wc.dataset].identities, "identities.h5"
        ),
        real=results("leakage", "{faces}", "embeddings.h5"),
        verification_set=lambda wc: config["verification_sets"][
            config["leakage"]["verification_set"]
        ],
        fr=config["reference_fr"]["checkpoint"],
    output:
        measure=results("leakage", "{faces}", "{dataset}.json"),
    log:
        logs("leakage", "{faces}", "{dataset}.log"),
    wildcard_constraints:
        faces=REAL_FACES_NAMES,
        dataset=DATASET_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("measure_leakage")
    resources:
        **stage_resources("measure_leakage"),
    params:
        fars=config["leakage"]["fars"],
        closest=config["leakage"]["closest"],
        reference_fr=REFERENCE_FR,
        device=config["device"],
    script:
        "../scripts/measure_leakage.py"


rule leakage:
    input:
        expand(results("leakage", "{faces}", "embeddings.h5"), faces=config["real_faces"]),
        expand(
            results("leakage", "{faces}", "{dataset}.json"),
            faces=config["real_faces"],
            dataset=RUNS,
        ),


localrules:
    leakage,
