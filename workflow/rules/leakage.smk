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
        generator=generator_files(),
        variations=lambda wc: (
            [results("datasets", wc.dataset, "variations.h5")]
            if config["leakage"]["variations"]
            else []
        ),
    output:
        measure=results("leakage", "{faces}", "{dataset}.json"),
        pairs=report(
            results("leakage", "{faces}", "{dataset}_pairs.png"),
            caption="../report/leakage_pairs.rst",
            category="Leakage",
            subcategory="{faces}",
        ),
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
        generator=generator_spec("truncation_psi"),
        collection=lambda wc: {
            k: config["real_faces"][wc.faces][k] for k in ("source", "path")
        },
        truth=lambda wc: world_training_faces(wc.faces),
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


# Identity capacity: the capacity recipe run for each N (config capacity), then the fraction
# with a neighbour inside ICT, the mean nearest angle and the distinct identities against N.


rule capacity_identities:
    input:
        fr=config["reference_fr"]["checkpoint"],
        generator=generator_files(),
        avoid=identity_avoid,
    output:
        identities=results("capacity", "{identities}", "n{n}", "identities.h5"),
        stats=results("capacity", "{identities}", "n{n}", "stats.csv"),
    log:
        logs("capacity", "{identities}", "n{n}.log"),
    benchmark:
        benchmarks("capacity", "{identities}", "n{n}.tsv")
    wildcard_constraints:
        identities=IDENTITY_NAMES,
        n=r"\d+",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("capacity_identities")
    resources:
        **identity_resources("capacity_identities"),
    params:
        recipe=lambda wc: {**identity_recipe(wc.identities), "n": int(wc.n)},
        seed=lambda wc: identity_seed(wc.identities),
        generator=generator_spec(),
        reference_fr=REFERENCE_FR,
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_of(output.identities),
    script:
        "../scripts/sample_identities.py"


rule identity_capacity:
    input:
        stores=lambda wc: list(capacity_stores(wc.identities).values()),
        generator=generator_files(),
    output:
        table=results("capacity", "{identities}", "capacity.csv"),
        figure=report(
            results("capacity", "{identities}", "capacity.png"),
            caption="../report/capacity.rst",
            category="Figures",
        ),
    log:
        logs("capacity", "{identities}.log"),
    wildcard_constraints:
        identities=IDENTITY_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("identity_capacity")
    resources:
        **stage_resources("identity_capacity"),
    params:
        stores=lambda wc: capacity_stores(wc.identities),
        ict=lambda wc: identity_recipe(wc.identities)["ict"],
        generator=generator_spec("truncation_psi", "noise_mode"),
        label=lambda wc: wc.identities,
        device=config["device"],
    script:
        "../scripts/identity_capacity.py"


rule capacity:
    input:
        CAPACITY_OUTPUTS,


localrules:
    capacity,
