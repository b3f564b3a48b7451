# FR training on a dataset in the dataset layout (results/datasets/<name>/rendered/:
# images/ + index.csv), rendered from the dataset's variations or placed there by the user.


rule train_fr:
    input:
        data=results("datasets", "{dataset}", "rendered"),
        validation=lambda wc: [
            config["verification_sets"][n] for n in config["training"]["validation"]
        ],
    output:
        model=results("training", "{dataset}", "model.pt"),
        train_log=results("training", "{dataset}", "train_log.csv"),
        validation=results("training", "{dataset}", "validation.json"),
    log:
        logs("training", "{dataset}.log"),
    benchmark:
        benchmarks("training", "{dataset}.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        gpus=1,
    params:
        recipe=lambda wc: training_recipe(wc.dataset),
        validation={
            n: config["verification_sets"][n] for n in config["training"]["validation"]
        },
        checkpoint=lambda wc, output: checkpoint_of(output.model),
        device=config["device"],
    script:
        "../scripts/train_fr.py"
