# Rendering a dataset's variations into the dataset layout (images/ + index.csv), sharded by
# identity range like the variations, then its card and contact sheet.
#
# The shard directories are temp(): once merged (hard links, so no image is stored twice) they
# are removed. Reruns still work: Snakemake keeps the shards' params and inputs in its metadata,
# so a changed render setting, variations store or generator reruns the shards and the merge.


rule render_dataset:
    input:
        variations=results("datasets", "{dataset}", "variations.h5"),
        generator=generator_files(),
    output:
        shard=temp(
            directory(results("datasets", "{dataset}", "render", "shard{shard}"))
        ),
    log:
        logs("render", "{dataset}", "shard{shard}.log"),
    benchmark:
        benchmarks("render", "{dataset}", "shard{shard}.tsv")
    wildcard_constraints:
        dataset=DATASET_NAMES,
        shard=r"\d{3}",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("render_dataset")
    resources:
        **stage_resources("render_dataset"),
    params:
        generator=generator_spec("truncation_psi"),
        image_size=config["training"]["recipe"]["input_size"],
        render=render_settings(),
        shards=lambda wc: dataset_config(wc.dataset)["shards"],
        device=config["device"],
    script:
        "../scripts/render_dataset.py"


rule merge_render_shards:
    input:
        shards=lambda wc: expand(
            results("datasets", wc.dataset, "render", "shard{shard:03d}"),
            shard=range(dataset_config(wc.dataset)["shards"]),
        ),
    output:
        root=directory(results("datasets", "{dataset}", "rendered")),
    log:
        logs("render", "{dataset}", "merge.log"),
    wildcard_constraints:
        dataset=DATASET_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("merge_render_shards")
    resources:
        **stage_resources("merge_render_shards"),
    script:
        "../scripts/merge_render_shards.py"


rule write_dataset_card:
    input:
        identities=lambda wc: results(
            "identities", RUNS[wc.dataset].identities, "identities.h5"
        ),
        variations=results("datasets", "{dataset}", "variations.h5"),
        rendered=results("datasets", "{dataset}", "rendered"),
        generator=generator_files(),
        fr=config["reference_fr"]["checkpoint"],
    output:
        card=results("datasets", "{dataset}", "card.json"),
    log:
        logs("render", "{dataset}", "card.log"),
    wildcard_constraints:
        dataset=DATASET_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("write_dataset_card")
    resources:
        **stage_resources("write_dataset_card"),
    params:
        generator=generator_spec(),
        reference_fr=REFERENCE_FR,
        render=render_settings(),
        image_size=config["training"]["recipe"]["input_size"],
        recipes=dataset_recipes,
        seed=lambda wc: run_seed(wc.dataset),
    script:
        "../scripts/write_dataset_card.py"


rule plot_contact_sheet:
    input:
        rendered=results("datasets", "{dataset}", "rendered"),
    output:
        sheet=report(
            results("datasets", "{dataset}", "contact_sheet.png"),
            caption="../report/contact_sheet.rst",
            category="Datasets",
            subcategory="{dataset}",
        ),
    log:
        logs("render", "{dataset}", "contact_sheet.log"),
    wildcard_constraints:
        dataset=DATASET_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("plot_contact_sheet")
    resources:
        **stage_resources("plot_contact_sheet"),
    script:
        "../scripts/plot_contact_sheet.py"


rule datasets:
    input:
        expand(
            results("datasets", "{dataset}", "{file}"),
            dataset=RUNS,
            file=["rendered", "card.json", "contact_sheet.png"],
        ),


localrules:
    datasets,
