# Shared helpers: config validation (defaults and derived paths filled by brownface.config),
# the two model specs every sampling job gets, and output, log and checkpoint paths.
import math
import re

from brownface import config as brownface_config
from brownface.models.fr import reference_fr_spec
from brownface.models.generator import generator_spec as brownface_generator_spec
from brownface.runlog import or_exit
from brownface.store import checkpoint_path
from brownface.world.layout import REFERENCE_FR_NAME, world_inputs, world_paths

or_exit(brownface_config.validate, config, source="config")
or_exit(brownface_config.check_inputs, config)

RESULTS = config["results"]
WORLD_PATHS = world_paths(RESULTS)
DETECTED_LANDMARKS = brownface_config.detected_landmarks_path(RESULTS)


def results(*parts):
    """A path under the results directory."""
    return "/".join([RESULTS, *parts])


def logs(*parts):
    """A log path, mirroring the output it belongs to."""
    return results("logs", *parts)


def benchmarks(*parts):
    """A Snakemake benchmark table path (the repository's benchmarks/ is for measurements)."""
    return results("benchmarks", *parts)


def checkpoint_of(output):
    """The resume file of the job whose main output is ``output`` (kept after the job; cleared
    by onsuccess once the output is accepted, see brownface.store.checkpoint)."""
    return checkpoint_path(RESULTS, output)


def stage_threads(rule):
    """The threads of one rule's jobs (config resources.<rule>.threads)."""
    return config["resources"][rule]["threads"]


def stage_resources(rule):
    """The resources of one rule's jobs (config resources.<rule>): mem_mb, runtime, gpu."""
    return brownface_config.stage_resources(config, rule)


def generator_spec(*unused):
    """The generator spec as a job param; ``unused`` names settings (truncation_psi,
    noise_mode) the job never reads, left out so that changing them does not rerun it.
    """
    return or_exit(brownface_generator_spec, config, unused).to_dict()


def generator_files():
    """The generator's weights file as a job input (the world has none): Snakemake then checks
    that it exists and reruns the job when it changes."""
    weights = config["generator"]["checkpoint"]
    return [weights] if weights else []


#: The world is a default, never a fallback: its sets and reference network are built when
#: the config uses them (the demo), and a run on real files (config/paper.yaml) builds none.
USES_WORLD_GENERATOR = config["generator"]["kind"] == "world"
USES_WORLD_REFERENCE = (
    config["reference_fr"]["checkpoint"] == WORLD_PATHS["reference_fr"]
)
#: Every replica of every dataset (one, or one per datasets.<name>.seeds entry, named
#: <name>@s<seed>), by the name its files and model carry, and the identity stores they use.
RUNS = brownface_config.dataset_runs(config)
IDENTITY_RUNS = brownface_config.identity_runs(config)
#: The identities target: every recipe at the top-level seed, and every replica's store.
ALL_IDENTITY_RUNS = list(dict.fromkeys([*config["identities"], *IDENTITY_RUNS]))
DATASET_NAMES = "|".join(map(re.escape, RUNS)) or "no-datasets"
IDENTITY_NAMES = "|".join(map(re.escape, ALL_IDENTITY_RUNS)) or "no-recipes"
REAL_FACES_NAMES = "|".join(map(re.escape, config["real_faces"])) or "no-real-faces"


def dataset_config(run):
    """The datasets.<name> section a replica belongs to."""
    return config["datasets"][RUNS[run].dataset]


def run_seed(run):
    """The sampling seed of a replica: its own, or the top-level seed."""
    seed = RUNS[run].seed
    return config["seed"] if seed is None else seed


def identity_recipe(run):
    """The identities recipe of an identity store (a recipe name, or <recipe>@s<seed>)."""
    return config["identities"][IDENTITY_RUNS[run][0] if run in IDENTITY_RUNS else run]


def identity_resources(rule):
    """An identities job's resources: a recipe with gpus above 1 (Langevin on that many
    torchrun ranks) asks for that many GPUs, else resources.<rule> applies."""
    base = stage_resources(rule)

    def gpu(wildcards):
        gpus = identity_recipe(wildcards.identities)["gpus"]
        return gpus if gpus > 1 else base["gpu"]

    return {**base, "gpu": gpu}


def identity_avoid(wildcards):
    """The avoid store of an identities job's recipe, as its input ([] when it has none)."""
    avoid = identity_recipe(wildcards.identities)["avoid"]
    return [avoid] if avoid else []


def identity_seed(run):
    seed = IDENTITY_RUNS[run][1] if run in IDENTITY_RUNS else None
    return config["seed"] if seed is None else seed


def training_recipe(run):
    """The training recipe of a replica's model: a replica with a seed trains from it."""
    recipe = dict(config["training"]["recipe"])
    if run in RUNS and RUNS[run].seed is not None:
        recipe["seed"] = RUNS[run].seed
    return recipe


def training_ranks():
    """The training job's torchrun ranks as a param, {} for one (config training.gpus)."""
    gpus = config["training"]["gpus"]
    return {"gpus": gpus} if gpus > 1 else {}


#: The real-data models (config real_models): the world's reference network when it steers
#: sampling, then each configured one (e.g. a CASIA-WebFace model), by name -> row label.
REAL_MODELS = {
    **(
        {REFERENCE_FR_NAME: "real data (world identities)"}
        if USES_WORLD_REFERENCE
        else {}
    ),
    **{name: m["label"] for name, m in config["real_models"].items()},
}
#: Rows of the report: the real-data models, then each dataset's replicas.
REPORT_MODELS = [*REAL_MODELS, *RUNS]

REFERENCE_FR = reference_fr_spec(config["reference_fr"]).to_dict()


def model_spec(model):
    """The FR spec (FRSpec.to_dict) of a scored model: the world's reference network, a
    real_models entry (its label as training data), or a dataset's trained model.pt."""
    if model == REFERENCE_FR_NAME:
        return {"kind": "brownface", "checkpoint": WORLD_PATHS["reference_fr"]}
    if model in config["real_models"]:
        section = config["real_models"][model]
        spec = reference_fr_spec(section).to_dict()
        return {**spec, "extra": {"training_data": section["label"]}}
    return {"kind": "brownface", "checkpoint": results("training", model, "model.pt")}


def model_file(model):
    """The weights file of a model name (a job input, so a new file reruns its scores)."""
    return model_spec(model)["checkpoint"]


def world_params(section=None, keys=None):
    """The world keys a data set depends on (the renderer's, plus a section or some of its
    keys), so changing one data set's settings rebuilds only that data set."""
    return world_inputs(config["world"], section, keys)


def render_settings():
    """The render section as a job param; jpeg_quality only for JPEG, so that changing it does
    not rerun PNG renders."""
    section = config["render"]
    if section["format"] == "jpeg":
        return dict(section)
    return {"format": section["format"]}


def dataset_recipes(wc):
    """The identities and variations recipes of a dataset, by name (for its card)."""
    dataset = dataset_config(wc.dataset)
    return {
        kind: {"name": dataset[kind], "recipe": config[kind][dataset[kind]]}
        for kind in ("identities", "variations")
    }


def verification_set_files(name):
    """A .bin set's file, or an LFW tree's pairs.txt and image folder."""
    value = config["verification_sets"][name]
    return [value["pairs"], value["images"]] if isinstance(value, dict) else [value]


#: The report's columns (verification sets, then IJB sets) and its histograms' ICT line.
BENCHMARKS = [*config["verification_sets"], *config["ijb_sets"]]
ICT_DEG = (
    math.degrees(next(iter(config["identities"].values()))["ict"])
    if config["identities"]
    else None
)
#: One replica per dataset stands for it in the figures (the first; the table has them all).
FIGURE_RUNS = {
    name: next(run for run, r in RUNS.items() if r.dataset == name)
    for name in config["datasets"]
}
#: The ROC figure's curves: the real-data models, then each dataset.
FIGURE_MODELS = {
    **{label: name for name, label in REAL_MODELS.items()},
    **FIGURE_RUNS,
}


def table_rows():
    """The table's rows: the real-data reference first, then each dataset with its size."""
    rows = [
        {"label": label, "models": [name], "real": True}
        for name, label in REAL_MODELS.items()
    ]
    for name, dataset in config["datasets"].items():
        n = config["identities"][dataset["identities"]]["n"]
        per_identity = config["variations"][dataset["variations"]]["variations"] + 1
        models = [run for run, r in RUNS.items() if r.dataset == name]
        seeds = f", {len(models)} seeds" if dataset["seeds"] else ""
        rows.append(
            {"label": f"{name} ({n} x {per_identity}{seeds})", "models": models}
        )
    return rows


def variation_stats(run):
    """The shard statistics CSVs of a replica's variations."""
    return expand(
        results("datasets", run, "variations", "stats{shard:03d}.csv"),
        shard=range(dataset_config(run)["shards"]),
    )


#: The capacity analysis's outputs (none without config capacity.identities and ns).
CAPACITY_OUTPUTS = (
    [
        results("capacity", config["capacity"]["identities"], f"capacity.{ext}")
        for ext in ("csv", "png")
    ]
    if config["capacity"]["identities"] and config["capacity"]["ns"]
    else []
)


def capacity_stores(recipe):
    """N -> the identities store of each capacity run; the recipe's own n is its store."""
    own = config["identities"][recipe]["n"]
    return {
        n: (
            results("identities", recipe, "identities.h5")
            if n == own
            else results("capacity", recipe, f"n{n}", "identities.h5")
        )
        for n in config["capacity"]["ns"]
    }


def world_training_faces(faces):
    """Whether a real_faces collection is the world generator's training set, whose leakage
    the world knows the truth of."""
    return (
        config["generator"]["kind"] == "world"
        and config["real_faces"][faces]["path"] == WORLD_PATHS["training_faces"]
    )


def real_faces_generator(wc):
    """The generator spec for a collection of generator frames (its FR crop), else None."""
    if config["real_faces"][wc.faces]["source"] != "generator_frames":
        return None
    return generator_spec("truncation_psi", "noise_mode")
