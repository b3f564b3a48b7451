# Identities (inter-class): random, reject or Langevin, one store per named recipe.


rule sample_identities:
    input:
        fr=config["reference_fr"]["checkpoint"],
        generator=generator_files(),
        avoid=lambda wc: (
            [config["identities"][wc.identities]["avoid"]]
            if config["identities"][wc.identities]["avoid"]
            else []
        ),
    output:
        identities=results("identities", "{identities}", "identities.h5"),
        stats=results("identities", "{identities}", "stats.csv"),
    log:
        logs("identities", "{identities}.log"),
    benchmark:
        benchmarks("identities", "{identities}.tsv")
    wildcard_constraints:
        identities="|".join(config["identities"]) or "no-recipes",
    conda:
        "../../envs/brownface.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        recipe=lambda wc: config["identities"][wc.identities],
        seed=config["seed"],
        generator=generator_spec(),
        reference_fr=REFERENCE_FR,
        device=config["device"],
        checkpoint=lambda wc, output: checkpoint_of(output.identities),
    script:
        "../scripts/sample_identities.py"


rule identities:
    input:
        expand(
            results("identities", "{identities}", "identities.h5"),
            identities=config["identities"],
        ),


localrules:
    identities,
