"""Where the world's data sets live under the results directory.

The world rules write these files and the config's null defaults point at them (the reference
FR checkpoint, the verification sets, the Multi-PIE tree), so both read the paths from here.
"""

from __future__ import annotations

#: The name of the world's reference FR network in evaluations and reports.
REFERENCE_FR_NAME = "world_reference_fr"
#: Verification sets the world writes, by name (``<results>/world/benchmarks/<name>.bin``).
WORLD_VERIFICATION_SETS = ("lfw", "cfp_fp")
#: The world's LFW pairs as the original LFW distribution ships them: a tree and pairs.txt.
WORLD_LFW_TREE = "lfw_tree"
#: IJB sets the world writes, by name (``<results>/world/benchmarks/<name>/``).
WORLD_IJB_SETS = ("ijbc",)


def world_path(results: str, *parts: str) -> str:
    """A path under ``<results>/world``."""
    return "/".join([results, "world", *parts])


def world_paths(results: str) -> dict[str, str]:
    """The world's outputs that other stages read by default."""
    return {
        "multipie": world_path(results, "multipie"),
        "landmarks": world_path(results, "multipie_landmarks.csv"),
        "reference_fr": world_path(results, "reference_fr", "model.pt"),
        **{
            name: world_path(results, "benchmarks", f"{name}.bin")
            for name in WORLD_VERIFICATION_SETS
        },
        **{name: world_path(results, "benchmarks", name) for name in WORLD_IJB_SETS},
        "lfw_tree_pairs": world_path(results, "benchmarks", "pairs.txt"),
        "lfw_tree_images": world_path(results, "benchmarks", "lfw"),
        "training_faces": world_path(results, "training_faces"),
    }


#: The world keys its renderer, and so every world data set, depends on.
RENDERER_KEYS = ("seed", "resolution", "identity_dim")


def world_inputs(world: dict, section: str | None = None, keys: list[str] | None = None) -> dict:
    """The world keys a data set depends on: the renderer's, plus a section (or some of its
    keys)."""
    inputs = {k: world[k] for k in RENDERER_KEYS}
    if section is not None:
        values = world[section]
        inputs[section] = {k: values[k] for k in (keys or values)}
    return inputs
