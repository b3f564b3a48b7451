# Identities (inter-class): random, reject or Langevin, one store per named recipe.


rule sample_identities:
    input:
        fr=config["reference_fr"]["checkpoint"],
        generator=generator_files(),
        avoid=identity_avoid,
    output:
        identities=results("identities", "{identities}", "identities.h5"),
        stats=results("identities", "{identities}", "stats.csv"),
    log:
        logs("identities", "{identities}.log"),
    benchmark:
        benchmarks("identities", "{identities}.tsv")
    wildcard_constraints:
        identities=IDENTITY_NAMES,
    conda:
        "../../envs/brownface.yaml"
    threads: stage_threads("sample_identities")
    resources:
        **identity_resources("sample_identities"),
    params:
        recipe=lambda wc: identity_recipe(wc.identities),
        seed=lambda wc: identity_seed(wc.identities),
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
            identities=ALL_IDENTITY_RUNS,
        ),


localrules:
    identities,
