# Shared helpers: config validation (defaults filled by the schema), output paths.
import sys

from brownface import config as brownface_config
from brownface.errors import UserError

try:
    brownface_config.validate(config, source="config")
except UserError as exc:
    sys.stderr.write(f"brownface: error: {exc}\n")
    sys.exit(1)

RESULTS = config["results"]


def results(*parts):
    """A path under the results directory."""
    return "/".join([RESULTS, *parts])


def logs(*parts):
    """A log path, mirroring the output it belongs to."""
    return results("logs", *parts)


def benchmarks(*parts):
    """A Snakemake benchmark table path (the repository's benchmarks/ is for measurements)."""
    return results("benchmarks", *parts)


WORLD_CORE = ("seed", "resolution", "identity_dim", "z_dim", "w_dim")


def world_params(section=None, keys=None):
    """The world keys a job depends on (the generator's, plus a section or only some of its
    keys), so changing one data set's settings reruns only that data set."""
    params = {k: config["world"][k] for k in WORLD_CORE}
    if section is not None:
        values = config["world"][section]
        params[section] = {k: values[k] for k in (keys or values)}
    return params


def model_file(model):
    """The model.pt of a model name: the world's reference network or a trained dataset."""
    if model == "world_reference_fr":
        return results("world", "reference_fr", "model.pt")
    return results("training", model, "model.pt")


def multipie_root():
    """The Multi-PIE tree the covariates are fitted on (the world's by default)."""
    return config["covariates"]["multipie"] or results("world", "multipie")


def multipie_landmarks():
    """Its 5-point landmark file."""
    return config["covariates"]["landmarks"] or results(
        "world", "multipie_landmarks.csv"
    )
