# The procedural face world: the demo's Multi-PIE and benchmark sets, in the real formats.
# The paths other stages read by default come from brownface.world.layout (WORLD_PATHS).

WORLD = results("world")


rule build_world_multipie:
    output:
        root=directory(WORLD_PATHS["multipie"]),
        landmarks=WORLD_PATHS["landmarks"],
    log:
        logs("world", "build_world_multipie.log"),
    benchmark:
        benchmarks("world", "build_world_multipie.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("build_world_multipie")
    resources:
        **stage_resources("build_world_multipie"),
    params:
        world=world_params("multipie"),
    script:
        "../scripts/build_world_multipie.py"


rule build_world_lfw:
    output:
        lfw_bin=WORLD_PATHS["lfw"],
        tree=directory(f"{WORLD}/benchmarks/lfw"),
        pairs=f"{WORLD}/benchmarks/pairs.txt",
    log:
        logs("world", "build_world_lfw.log"),
    benchmark:
        benchmarks("world", "build_world_lfw.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("build_world_lfw")
    resources:
        **stage_resources("build_world_lfw"),
    params:
        world=world_params(
            "benchmarks", ["image_size", "lfw_folds", "lfw_pairs_per_fold"]
        ),
    script:
        "../scripts/build_world_lfw.py"


rule build_world_cfp_fp:
    output:
        cfp_fp_bin=WORLD_PATHS["cfp_fp"],
    log:
        logs("world", "build_world_cfp_fp.log"),
    benchmark:
        benchmarks("world", "build_world_cfp_fp.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("build_world_cfp_fp")
    resources:
        **stage_resources("build_world_cfp_fp"),
    params:
        world=world_params(
            "benchmarks", ["image_size", "cfp_fp_folds", "cfp_fp_people_per_fold"]
        ),
    script:
        "../scripts/build_world_cfp_fp.py"


rule build_world_ijbc:
    output:
        root=directory(f"{WORLD}/benchmarks/ijbc"),
    log:
        logs("world", "build_world_ijbc.log"),
    benchmark:
        benchmarks("world", "build_world_ijbc.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("build_world_ijbc")
    resources:
        **stage_resources("build_world_ijbc"),
    params:
        world=world_params("benchmarks", ["ijbc_subjects", "ijbc_image_size"]),
    script:
        "../scripts/build_world_ijbc.py"


rule plot_world_sheet:
    output:
        sheet=report(
            f"{WORLD}/sheet.png",
            caption="../report/world_sheet.rst",
            category="World",
        ),
    log:
        logs("world", "plot_world_sheet.log"),
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("plot_world_sheet")
    resources:
        **stage_resources("plot_world_sheet"),
    params:
        world=world_params(),
    script:
        "../scripts/plot_world_sheet.py"


rule build_world_training_faces:
    output:
        root=directory(WORLD_PATHS["training_faces"]),
    log:
        logs("world", "build_world_training_faces.log"),
    benchmark:
        benchmarks("world", "build_world_training_faces.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("build_world_training_faces")
    resources:
        **stage_resources("build_world_training_faces"),
    params:
        world=world_params("training_set", ["identities", "images_per_identity"]),
    script:
        "../scripts/build_world_training_faces.py"


rule build_world_fr_train:
    output:
        root=directory(f"{WORLD}/reference_fr_train"),
    log:
        logs("world", "build_world_fr_train.log"),
    benchmark:
        benchmarks("world", "build_world_fr_train.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("build_world_fr_train")
    resources:
        **stage_resources("build_world_fr_train"),
    params:
        world=world_params(
            "reference_fr", ["identities", "images_per_identity", "image_size"]
        ),
    script:
        "../scripts/build_world_fr_train.py"


rule train_world_reference_fr:
    input:
        data=rules.build_world_fr_train.output.root,
        lfw=rules.build_world_lfw.output.lfw_bin,
        cfp_fp=rules.build_world_cfp_fp.output.cfp_fp_bin,
    output:
        model=WORLD_PATHS["reference_fr"],
        train_log=f"{WORLD}/reference_fr/train_log.csv",
        validation=f"{WORLD}/reference_fr/validation.json",
    log:
        logs("world", "train_world_reference_fr.log"),
    benchmark:
        benchmarks("world", "train_world_reference_fr.tsv")
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("train_world_reference_fr")
    resources:
        **stage_resources("train_world_reference_fr"),
    params:
        recipe=config["world"]["reference_fr"]["recipe"],
        checkpoint=lambda wc, output: checkpoint_of(output.model),
        device=config["device"],
    script:
        "../scripts/train_world_reference_fr.py"


rule world:
    input:
        rules.build_world_multipie.output,
        rules.build_world_lfw.output,
        rules.build_world_cfp_fp.output,
        rules.build_world_ijbc.output,
        rules.plot_world_sheet.output,


rule reference_fr:
    input:
        rules.train_world_reference_fr.output,


localrules:
    world,
    reference_fr,
