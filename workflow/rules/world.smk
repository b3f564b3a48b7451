# The procedural face world: the demo's Multi-PIE and benchmark sets, in the real formats.

WORLD = results("world")


rule build_world_multipie:
    output:
        root=directory(f"{WORLD}/multipie"),
        landmarks=f"{WORLD}/multipie_landmarks.csv",
    params:
        world=config["world"],
    log:
        logs("world", "build_world_multipie.log"),
    benchmark:
        benchmarks("world", "build_world_multipie.tsv")
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/brownface.yaml"
    script:
        "../scripts/build_world_multipie.py"


rule build_world_lfw:
    output:
        lfw_bin=f"{WORLD}/benchmarks/lfw.bin",
        tree=directory(f"{WORLD}/benchmarks/lfw"),
        pairs=f"{WORLD}/benchmarks/pairs.txt",
    params:
        world=config["world"],
    log:
        logs("world", "build_world_lfw.log"),
    benchmark:
        benchmarks("world", "build_world_lfw.tsv")
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/brownface.yaml"
    script:
        "../scripts/build_world_lfw.py"


rule build_world_cfp_fp:
    output:
        cfp_fp_bin=f"{WORLD}/benchmarks/cfp_fp.bin",
    params:
        world=config["world"],
    log:
        logs("world", "build_world_cfp_fp.log"),
    benchmark:
        benchmarks("world", "build_world_cfp_fp.tsv")
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/brownface.yaml"
    script:
        "../scripts/build_world_cfp_fp.py"


rule build_world_ijbc:
    output:
        root=directory(f"{WORLD}/benchmarks/ijbc"),
    params:
        world=config["world"],
    log:
        logs("world", "build_world_ijbc.log"),
    benchmark:
        benchmarks("world", "build_world_ijbc.tsv")
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/brownface.yaml"
    script:
        "../scripts/build_world_ijbc.py"


rule plot_world_sheet:
    output:
        sheet=report(
            f"{WORLD}/sheet.png",
            caption="../report/world_sheet.rst",
            category="World",
        ),
    params:
        world=config["world"],
    log:
        logs("world", "plot_world_sheet.log"),
    threads: 1
    conda:
        "../../envs/brownface.yaml"
    script:
        "../scripts/plot_world_sheet.py"


rule world:
    input:
        rules.build_world_multipie.output,
        rules.build_world_lfw.output,
        rules.build_world_cfp_fp.output,
        rules.build_world_ijbc.output,
        rules.plot_world_sheet.output,


localrules:
    world,
