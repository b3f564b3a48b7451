# Verification accuracy of FR models on the configured .bin sets (insightface protocol).


rule evaluate_verification:
    input:
        model=lambda wc: model_file(wc.model),
        bin=lambda wc: config["verification_sets"][wc.vset],
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
    threads: 2
    resources:
        mem_mb=4000,
    params:
        device=config["device"],
    script:
        "../scripts/evaluate_verification.py"


rule evaluation:
    input:
        expand(
            results("evaluation", REFERENCE_FR_NAME, "{vset}.json"),
            vset=config["verification_sets"],
        ),


localrules:
    evaluation,
