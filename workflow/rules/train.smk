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
    threads: stage_threads("train_fr")
    resources:
        **stage_resources("train_fr"),
    params:
        recipe=lambda wc: training_recipe(wc.dataset),
        validation={
            n: config["verification_sets"][n] for n in config["training"]["validation"]
        },
        checkpoint=lambda wc, output: checkpoint_of(output.model),
        device=config["device"],
        # Ranks (torchrun) only when more than one, so one-GPU models keep their job params.
        **training_ranks(),
    script:
        "../scripts/train_fr.py"
