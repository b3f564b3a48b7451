# Paper-style tables: every model (the world's reference network when it is the one in use, and
# one per dataset) on every verification set.


rule report_verification:
    input:
        results=expand(
            results("evaluation", "{model}", "{vset}.json"),
            model=REPORT_MODELS,
            vset=config["verification_sets"],
        ),
    output:
        csv=results("report", "verification.csv"),
        markdown=results("report", "verification.md"),
        latex=results("report", "verification.tex"),
    log:
        logs("report", "verification.log"),
    conda:
        "../../envs/brownface.yaml"
    script:
        "../scripts/report_verification.py"


rule report:
    input:
        rules.report_verification.output,


localrules:
    report,
