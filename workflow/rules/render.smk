# Rendering a dataset's variations into the dataset layout (images/ + index.csv).


rule render_dataset:
    input:
        variations=results("datasets", "{dataset}", "variations.h5"),
        generator=generator_files(),
    output:
        root=directory(results("datasets", "{dataset}", "rendered")),
    log:
        logs("render", "{dataset}.log"),
    benchmark:
        benchmarks("render", "{dataset}.tsv")
    wildcard_constraints:
        dataset="|".join(config["datasets"]) or "no-datasets",
    conda:
        "../../envs/brownface.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        generator=generator_spec("truncation_psi"),
        image_size=config["training"]["recipe"]["input_size"],
        device=config["device"],
    script:
        "../scripts/render_dataset.py"
