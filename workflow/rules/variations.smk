# Variations (intra-class): Dispersion or DisCo per dataset, sharded by identity range.


rule sample_variations:
    input:
        identities=lambda wc: results(
            "identities", RUNS[wc.dataset].identities, "identities.h5"
        ),
        fr=config["reference_fr"]["checkpoint"],
        generator=generator_files(),
        covariates=lambda wc: (
            [config["covariates"]["path"]]
            if config["variations"][dataset_config(wc.dataset)["variations"]][
                "algorithm"
            ]
            == "disco"
            else []
        ),
    output:
        shard=results("datasets", "{dataset}", "variations", "shard{shard}.h5"),
        stats=results("datasets", "{dataset}", "variations", "stats{shard}.csv"),
    log:
        logs("variations", "{dataset}", "shard{shard}.log"),
    benchmark:
        benchmarks("variations", "{dataset}", "shard{shard}.tsv")
    wildcard_constraints:
        dataset=DATASET_NAMES,
        shard=r"\d{3}",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("sample_variations")
    resources:
        **stage_resources("sample_variations"),
    params:
        recipe_name=lambda wc: dataset_config(wc.dataset)["variations"],
        recipe=lambda wc: config["variations"][dataset_config(wc.dataset)["variations"]],
        shards=lambda wc: dataset_config(wc.dataset)["shards"],
        seed=lambda wc: run_seed(wc.dataset),
        generator=generator_spec("truncation_psi"),
        reference_fr=REFERENCE_FR,
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_of(output.shard),
    script:
        "../scripts/sample_variations.py"


rule merge_variations:
    input:
        identities=lambda wc: results(
            "identities", RUNS[wc.dataset].identities, "identities.h5"
        ),
        shards=lambda wc: expand(
            results("datasets", wc.dataset, "variations", "shard{shard:03d}.h5"),
            shard=range(dataset_config(wc.dataset)["shards"]),
        ),
    output:
        variations=results("datasets", "{dataset}", "variations.h5"),
    log:
        logs("variations", "{dataset}", "merge.log"),
    wildcard_constraints:
        dataset=DATASET_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("merge_variations")
    resources:
        **stage_resources("merge_variations"),
    script:
        "../scripts/merge_variations.py"


rule variations:
    input:
        expand(
            results("datasets", "{dataset}", "variations.h5"),
            dataset=RUNS,
        ),


localrules:
    variations,
