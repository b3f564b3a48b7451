# Covariate directions: project Multi-PIE photos into W (sharded), then one linear SVM per factor.
# A real Multi-PIE tree first gets its landmarks detected (dlib, sharded); the world's has its own.


rule detect_landmarks:
    input:
        root=config["covariates"]["multipie"],
    output:
        points=results("covariates", "landmarks", "shard{shard}.csv"),
        report=results("covariates", "landmarks", "shard{shard}_skipped.csv"),
    log:
        logs("covariates", "detect_landmarks_shard{shard}.log"),
    benchmark:
        benchmarks("covariates", "detect_landmarks_shard{shard}.tsv")
    wildcard_constraints:
        shard=r"\d{3}",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("detect_landmarks")
    resources:
        **stage_resources("detect_landmarks"),
    params:
        shards=config["covariates"]["detection"]["shards"],
        upsample=config["covariates"]["detection"]["upsample"],
        predictor=config["covariates"]["detection"]["predictor"],
    script:
        "../scripts/detect_landmarks.py"


rule merge_landmarks:
    input:
        points=expand(
            results("covariates", "landmarks", "shard{shard:03d}.csv"),
            shard=range(config["covariates"]["detection"]["shards"]),
        ),
        reports=expand(
            results("covariates", "landmarks", "shard{shard:03d}_skipped.csv"),
            shard=range(config["covariates"]["detection"]["shards"]),
        ),
    output:
        landmarks=DETECTED_LANDMARKS,
        landmarks68=results("covariates", "landmarks", "landmarks68.csv"),
        report=results("covariates", "landmarks", "skipped.csv"),
    log:
        logs("covariates", "merge_landmarks.log"),
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("merge_landmarks")
    resources:
        **stage_resources("merge_landmarks"),
    script:
        "../scripts/merge_landmarks.py"


rule project_multipie:
    input:
        root=config["covariates"]["multipie"],
        landmarks=config["covariates"]["landmarks"],
        generator=generator_files(),
    output:
        shard=results("covariates", "projections", "shard{shard}.h5"),
    log:
        logs("covariates", "project_shard{shard}.log"),
    benchmark:
        benchmarks("covariates", "project_shard{shard}.tsv")
    wildcard_constraints:
        shard=r"\d{3}",
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("project_multipie")
    resources:
        **stage_resources("project_multipie"),
    params:
        generator=generator_spec("truncation_psi", "noise_mode"),
        projection=config["covariates"]["projection"],
        subsets=config["covariates"]["subsets"],
        shards=config["covariates"]["shards"],
        seed=config["seed"],
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_of(output.shard),
    script:
        "../scripts/project_multipie.py"


rule merge_projections:
    input:
        root=config["covariates"]["multipie"],
        landmarks=config["covariates"]["landmarks"],
        shards=expand(
            results("covariates", "projections", "shard{shard:03d}.h5"),
            shard=range(config["covariates"]["shards"]),
        ),
    output:
        projections=results("covariates", "projections.h5"),
        quality=results("covariates", "projection_quality.csv"),
    log:
        logs("covariates", "merge_projections.log"),
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("merge_projections")
    resources:
        **stage_resources("merge_projections"),
    params:
        subsets=config["covariates"]["subsets"],
    script:
        "../scripts/merge_projections.py"


rule fit_covariates:
    input:
        projections=rules.merge_projections.output.projections,
    output:
        covariates=config["covariates"]["path"],
    log:
        logs("covariates", "fit_covariates.log"),
    benchmark:
        benchmarks("covariates", "fit_covariates.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("fit_covariates")
    resources:
        **stage_resources("fit_covariates"),
    params:
        subsets=config["covariates"]["subsets"],
        folds=config["covariates"]["folds"],
        seed=config["seed"],
    script:
        "../scripts/fit_covariates.py"


rule covariates:
    input:
        rules.fit_covariates.output,


localrules:
    covariates,
