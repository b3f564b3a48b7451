# The paper's table (every dataset's model, and the real-data reference, on every verification
# and IJB set) and its figures; `snakemake --report results/report.html` gathers them.


rule report_table:
    input:
        results=expand(
            results("evaluation", "{model}", "{benchmark}.json"),
            model=REPORT_MODELS,
            benchmark=BENCHMARKS,
        ),
        leakage=expand(
            results("leakage", "{faces}", "{dataset}.json"),
            faces=config["real_faces"],
            dataset=RUNS,
        ),
    output:
        csv=results("report", "table.csv"),
        markdown=results("report", "table.md"),
        latex=results("report", "table.tex"),
        html=report(
            results("report", "table.html"),
            caption="../report/table.rst",
            category="Table",
        ),
    log:
        logs("report", "table.log"),
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("report_table")
    resources:
        **stage_resources("report_table"),
    params:
        rows=table_rows(),
        verification_sets=list(config["verification_sets"]),
        ijb_sets=list(config["ijb_sets"]),
        fars=config["ijb"]["report_fars"],
        leakage_collections=list(config["real_faces"]),
        leakage_far=min(config["leakage"]["fars"]),
    script:
        "../scripts/report_table.py"


rule report_leakage:
    input:
        expand(
            results("leakage", "{faces}", "{dataset}.json"),
            faces=config["real_faces"],
            dataset=FIGURE_RUNS.values(),
        ),
    output:
        histograms=report(
            results("report", "leakage.png"),
            caption="../report/leakage.rst",
            category="Figures",
        ),
    log:
        logs("report", "leakage.log"),
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("report_leakage")
    resources:
        **stage_resources("report_leakage"),
    params:
        measures={
            faces: {
                d: results("leakage", faces, f"{r}.json") for d, r in FIGURE_RUNS.items()
            }
            for faces in config["real_faces"]
        },
        order=list(FIGURE_RUNS),
    script:
        "../scripts/report_leakage.py"


rule report_figures:
    input:
        roc=expand(
            results("evaluation", "{model}", "{ijb}_roc.csv"),
            model=FIGURE_MODELS.values(),
            ijb=config["ijb_sets"],
        ),
        stores=[results("datasets", r, "variations.h5") for r in FIGURE_RUNS.values()],
        identity_stats=[
            results("identities", RUNS[r].identities, "stats.csv")
            for r in FIGURE_RUNS.values()
        ],
        variation_stats=[variation_stats(r) for r in FIGURE_RUNS.values()],
        train_logs=[
            results("training", r, "train_log.csv") for r in FIGURE_RUNS.values()
        ],
    output:
        roc=[
            report(
                results("report", f"roc_{name}.png"),
                caption="../report/roc.rst",
                category="Figures",
            )
            for name in config["ijb_sets"]
        ],
        angles=report(
            results("report", "angles.png"),
            caption="../report/angles.rst",
            category="Figures",
        ),
        sampling=report(
            results("report", "sampling_stats.png"),
            caption="../report/sampling_stats.rst",
            category="Figures",
        ),
        training=report(
            results("report", "training_curves.png"),
            caption="../report/training_curves.rst",
            category="Figures",
        ),
    log:
        logs("report", "figures.log"),
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("report_figures")
    resources:
        **stage_resources("report_figures"),
    params:
        roc={
            name: {
                label: results("evaluation", m, f"{name}_roc.csv")
                for label, m in FIGURE_MODELS.items()
            }
            for name in config["ijb_sets"]
        },
        roc_out={
            name: results("report", f"roc_{name}.png") for name in config["ijb_sets"]
        },
        stores={
            d: results("datasets", r, "variations.h5") for d, r in FIGURE_RUNS.items()
        },
        identity_stats={
            dataset_config(r)["identities"]: results(
                "identities", RUNS[r].identities, "stats.csv"
            )
            for r in FIGURE_RUNS.values()
        },
        variation_stats={d: variation_stats(r) for d, r in FIGURE_RUNS.items()},
        train_logs={
            d: results("training", r, "train_log.csv") for d, r in FIGURE_RUNS.items()
        },
        ict_deg=ICT_DEG,
    script:
        "../scripts/report_figures.py"


rule report:
    input:
        rules.report_table.output,
        rules.report_figures.output if config["datasets"] else [],
        (
            rules.report_leakage.output
            if config["datasets"] and config["real_faces"]
            else []
        ),
        expand(
            results("leakage", "{faces}", "{dataset}_pairs.png"),
            faces=config["real_faces"],
            dataset=RUNS,
        ),


localrules:
    report,
