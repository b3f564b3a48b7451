# Verification accuracy of FR models on the configured .bin sets (insightface protocol), and
# IJB-B / IJB-C 1:1 and 1:N scores.


rule evaluate_verification:
    input:
        model=lambda wc: model_file(wc.model),
        benchmark=lambda wc: verification_set_files(wc.vset),
    output:
        result=results("evaluation", "{model}", "{vset}.json"),
    log:
        logs("evaluation", "{model}", "{vset}.log"),
    benchmark:
        benchmarks("evaluation", "{model}", "{vset}.tsv")
    wildcard_constraints:
        vset="|".join(config["verification_sets"]) or "no-sets",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("evaluate_verification")
    resources:
        **stage_resources("evaluate_verification"),
    params:
        model=lambda wc: model_spec(wc.model),
        benchmark=lambda wc: config["verification_sets"][wc.vset],
        device=config["device"],
    script:
        "../scripts/evaluate_verification.py"


# IJB-B / IJB-C: raw features per shard (an image range, resumable), then the scores.


rule ijb_features:
    input:
        model=lambda wc: model_file(wc.model),
        root=lambda wc: config["ijb_sets"][wc.ijb],
    output:
        features=results("evaluation", "{model}", "{ijb}", "features{shard}.h5"),
    log:
        logs("evaluation", "{model}", "{ijb}", "features{shard}.log"),
    benchmark:
        benchmarks("evaluation", "{model}", "{ijb}", "features{shard}.tsv")
    wildcard_constraints:
        ijb="|".join(config["ijb_sets"]) or "no-sets",
        shard=r"\d{3}",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("ijb_features")
    resources:
        **stage_resources("ijb_features"),
    params:
        model=lambda wc: model_spec(wc.model),
        shard=lambda wc: int(wc.shard),
        shards=config["ijb"]["shards"],
        batch_size=config["ijb"]["batch_size"],
        workers=config["ijb"]["workers"],
        partial=lambda wc, output: checkpoint_of(output.features),
        device=config["device"],
    script:
        "../scripts/ijb_features.py"


rule ijb_score:
    input:
        root=lambda wc: config["ijb_sets"][wc.ijb],
        features=lambda wc: expand(
            results("evaluation", wc.model, wc.ijb, "features{shard:03d}.h5"),
            shard=range(config["ijb"]["shards"]),
        ),
    output:
        metrics=results("evaluation", "{model}", "{ijb}.json"),
        roc_csv=results("evaluation", "{model}", "{ijb}_roc.csv"),
        roc_png=results("evaluation", "{model}", "{ijb}_roc.png"),
    log:
        logs("evaluation", "{model}", "{ijb}.log"),
    benchmark:
        benchmarks("evaluation", "{model}", "{ijb}.tsv")
    wildcard_constraints:
        ijb="|".join(config["ijb_sets"]) or "no-sets",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("ijb_score")
    resources:
        **stage_resources("ijb_score"),
    params:
        switches={
            k: config["ijb"][k]
            for k in ("use_flip", "use_detector_score", "use_norm_score")
        },
    script:
        "../scripts/ijb_score.py"


rule evaluation:
    input:
        expand(
            results("evaluation", REFERENCE_FR_NAME, "{vset}.json"),
            vset=[*config["verification_sets"], *config["ijb_sets"]],
        ),


localrules:
    evaluation,
