# Shared helpers: config validation (defaults and derived paths filled by brownface.config),
# the two model specs every sampling job gets, and output, log and checkpoint paths.
from brownface import config as brownface_config
from brownface.models.fr import reference_fr_spec
from brownface.models.generator import generator_spec as brownface_generator_spec
from brownface.runlog import or_exit
from brownface.store import checkpoint_path
from brownface.world.layout import REFERENCE_FR_NAME, world_paths
from brownface.world.stages import world_inputs

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
USES_WORLD_REFERENCE = config["reference_fr"]["checkpoint"] == WORLD_PATHS["reference_fr"]
#: Rows of the report: the world's reference network when it steers sampling, then each dataset.
REPORT_MODELS = [REFERENCE_FR_NAME] * USES_WORLD_REFERENCE + list(config["datasets"])

REFERENCE_FR = reference_fr_spec(config["reference_fr"]).to_dict()


def model_file(model):
    """The model.pt of a model name: the world's reference network or a trained dataset."""
    if model == REFERENCE_FR_NAME:
        return WORLD_PATHS["reference_fr"]
    return results("training", model, "model.pt")


def world_params(section=None, keys=None):
    """The world keys a data set depends on (the renderer's, plus a section or some of its
    keys), so changing one data set's settings rebuilds only that data set."""
    return world_inputs(config["world"], section, keys)
