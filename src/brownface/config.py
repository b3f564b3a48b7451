"""Loading and validating the workflow config against its JSON schema.

The schema (``config.schema.yaml``, shipped in the package and linked from
``workflow/schemas/``) is the one home of defaults, limits and descriptions:

* validation fills the defaults and turns the first problem into one line naming the key and
  what was expected. An object default marked ``x-merge-default: true`` also fills the keys a
  partial override leaves out (so ``world.reference_fr.recipe: {epochs: 2}`` keeps the rest);
* the parameter dataclasses of the stages (identity, variation, projection and training
  recipes, SVM subsets) take their defaults from the schema's ``$defs`` (:func:`defaults`) and
  check their values against it (:func:`check_params`), so a value built in code is held to
  the same limits as one read from YAML;
* paths left null derive from ``results`` (:func:`derive_paths`): the world's reference FR
  network, verification sets and Multi-PIE tree, and the covariates store.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import yaml

from brownface.errors import UserError
from brownface.models.generator import GENERATOR_KINDS
from brownface.world.layout import (
    REFERENCE_FR_NAME,
    WORLD_IJB_SETS,
    WORLD_LFW_TREE,
    WORLD_VERIFICATION_SETS,
    world_paths,
)


@cache
def schema() -> dict:
    """The config schema as a dict."""
    text = resources.files("brownface").joinpath("config.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _with_defaults(cls):
    """A validator class that fills ``default`` values of missing properties while validating."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" not in sub:
                    continue
                if key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
                elif sub.get("x-merge-default") and isinstance(instance[key], dict):
                    # Partial overrides keep the rest of this default (e.g. the world's recipe).
                    for k, v in sub["default"].items():
                        instance[key].setdefault(k, copy.deepcopy(v))
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    v, got = error.validator, error.instance
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(got) - set(allowed)) if isinstance(got, dict) else []
        return f"{key}: unknown key {extra[0]!r}; expected one of {', '.join(allowed)}"
    if v == "type":
        return f"{key}: expected {error.validator_value}, got {got!r}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"{key}: expected a value {op} {error.validator_value}, got {got!r}"
    if v == "enum":
        options = ", ".join(repr(o) for o in error.validator_value)
        return f"{key}: expected one of {options}, got {got!r}"
    if v == "not" and "const" in error.validator_value:
        return f"{key}: expected a value other than {error.validator_value['const']!r}"
    if v in ("minItems", "maxItems"):
        op = ">=" if v == "minItems" else "<="
        return f"{key}: expected {op} {error.validator_value} items, got {len(got)}"
    return f"{key}: {error.message}"


def _first_problem(validator: jsonschema.protocols.Validator, instance: Any) -> str | None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return _describe(jsonschema.exceptions.best_match(errors)) if errors else None


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults and derived paths) and return it.

    Raises UserError with one line naming the first problem.
    """
    if not isinstance(config, dict):
        raise UserError(f"{source}: expected a mapping of keys at the top level")
    problem = _first_problem(_Validator(schema()), config)
    if problem:
        raise UserError(f"{source}: {problem}")
    _check_references(config, source)
    derive_paths(config, source)
    return config


def _check_references(config: dict[str, Any], source: str) -> None:
    """Names that must refer to other entries of the config, or to a registered kind."""
    generator = config["generator"]["kind"]
    if generator not in GENERATOR_KINDS:
        known = ", ".join(map(repr, GENERATOR_KINDS))
        raise UserError(f"{source}: generator.kind: expected one of {known}, got {generator!r}")
    for name, dataset in config["datasets"].items():
        for kind in ("identities", "variations"):
            if dataset[kind] not in config[kind]:
                known = ", ".join(sorted(config[kind])) or "none defined"
                raise UserError(
                    f"{source}: datasets.{name}.{kind}: no {kind} recipe named "
                    f"{dataset[kind]!r} (known: {known})"
                )
    taken = {REFERENCE_FR_NAME, *dataset_runs(config)}
    for name in config["real_models"]:
        if name in taken or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UserError(
                f"{source}: real_models.{name}: a model name must be letters, digits, '_', "
                f"'.' or '-' and differ from the datasets and {REFERENCE_FR_NAME!r}"
            )
    recipe = config["capacity"]["identities"]
    if recipe is not None and recipe not in config["identities"]:
        known = ", ".join(sorted(config["identities"])) or "none defined"
        raise UserError(
            f"{source}: capacity.identities: no identities recipe named {recipe!r} (known: {known})"
        )
    if config["real_faces"]:
        name = config["leakage"]["verification_set"]
        value = config["verification_sets"].get(name, False)
        if value is False or isinstance(value, dict):
            known = ", ".join(
                k for k, v in config["verification_sets"].items() if not isinstance(v, dict)
            )
            raise UserError(
                f"{source}: leakage.verification_set: expected a .bin set of verification_sets, "
                f"got {name!r} (known: {known or 'none'})"
            )
    for name in config["training"]["validation"]:
        if name not in config["verification_sets"]:
            known = ", ".join(sorted(config["verification_sets"])) or "none defined"
            raise UserError(
                f"{source}: training.validation: no verification set named {name!r} (known: {known})"
            )
        if isinstance(config["verification_sets"][name], dict) or name == WORLD_LFW_TREE:
            raise UserError(
                f"{source}: training.validation: {name!r} is an LFW tree; validation during "
                "training reads .bin sets only"
            )


@dataclass(frozen=True)
class DatasetRun:
    """One replica of a dataset: its model and directory name, and what it is drawn from."""

    dataset: str  # the datasets.<name> it replicates
    identities: str  # the identity run it uses (see identity_runs)
    seed: int | None  # None = the top-level seed, and the training recipe's own seed


def replica_name(name: str, seed: int | None) -> str:
    """``name`` for the single replica of a dataset without seeds, else ``name@s<seed>``."""
    return name if seed is None else f"{name}@s{seed}"


def dataset_runs(config: Mapping[str, Any]) -> dict[str, DatasetRun]:
    """Every replica of every dataset (a validated config), by name, in config order."""
    runs = {}
    for name, dataset in config["datasets"].items():
        for seed in dataset["seeds"] or [None]:
            runs[replica_name(name, seed)] = DatasetRun(
                name, replica_name(dataset["identities"], seed), seed
            )
    return runs


def identity_runs(config: Mapping[str, Any]) -> dict[str, tuple[str, int | None]]:
    """The identity stores the replicas use: run name -> (recipe, seed or None)."""
    runs = {}
    for run in dataset_runs(config).values():
        recipe = config["datasets"][run.dataset]["identities"]
        runs[run.identities] = (recipe, run.seed)
    return runs


def stage_resources(config: Mapping[str, Any], rule: str) -> dict[str, int]:
    """The Snakemake resources of one rule's jobs, from ``resources.<rule>``: ``mem_mb``,
    ``runtime`` (minutes) and ``gpu``. FR training with ``training.gpus`` above 1 asks for
    that many GPUs, one per torchrun rank."""
    stage = config["resources"][rule]
    gpu = stage["gpu"]
    if rule == "train_fr" and config["training"]["gpus"] > 1:
        gpu = config["training"]["gpus"]
    return {"mem_mb": stage["mem_mb"], "runtime": stage["runtime"], "gpu": gpu}


def detected_landmarks_path(results: str) -> str:
    """Where the detect_landmarks rules write the 5-point landmarks of a real Multi-PIE."""
    return "/".join([results, "covariates", "landmarks", "landmarks.csv"])


def derive_paths(config: dict[str, Any], source: str = "config") -> None:
    """Fill the null paths from ``results``, in place (see the schema's descriptions)."""
    results = config["results"]
    world = world_paths(results)
    fr = config["reference_fr"]
    if fr["checkpoint"] is None:
        if fr["kind"] != "brownface":
            raise UserError(
                f"{source}: reference_fr.checkpoint: kind {fr['kind']} needs a checkpoint file "
                "(null means the world's reference network, which is kind brownface)"
            )
        fr["checkpoint"] = world["reference_fr"]
    covariates = config["covariates"]
    if covariates["path"] is None:
        covariates["path"] = "/".join([results, "covariates", "covariates.h5"])
    if covariates["landmarks"] is None:
        # The world's tree comes with its landmarks; a real tree has its landmarks detected.
        if covariates["multipie"] is None:
            covariates["landmarks"] = world["landmarks"]
        else:
            covariates["landmarks"] = detected_landmarks_path(results)
    if covariates["multipie"] is None:
        covariates["multipie"] = world["multipie"]
    for name, path in config["verification_sets"].items():
        if path is None and name == WORLD_LFW_TREE:
            config["verification_sets"][name] = {
                "pairs": world["lfw_tree_pairs"],
                "images": world["lfw_tree_images"],
            }
        elif path is None:
            if name not in WORLD_VERIFICATION_SETS:
                raise UserError(
                    f"{source}: verification_sets.{name}: null means the world's set of that "
                    f"name, and the world writes only {', '.join(WORLD_VERIFICATION_SETS)} "
                    f"and {WORLD_LFW_TREE}; "
                    "give a path"
                )
            config["verification_sets"][name] = world[name]
    for recipe in config["identities"].values():
        if recipe.get("avoid") in config["real_faces"]:  # a collection's name: its store
            recipe["avoid"] = "/".join([results, "leakage", recipe["avoid"], "embeddings.h5"])
    for name, faces in config["real_faces"].items():
        if faces["path"] is None:
            if faces["source"] != "generator_frames":
                raise UserError(
                    f"{source}: real_faces.{name}.path: null means the world's training faces, "
                    f"which are generator_frames, not {faces['source']}; give a path"
                )
            faces["path"] = world["training_faces"]
    for name, root in config["ijb_sets"].items():
        if root is None:
            if name not in WORLD_IJB_SETS:
                raise UserError(
                    f"{source}: ijb_sets.{name}: null means the world's set of that name, and "
                    f"the world writes only {', '.join(WORLD_IJB_SETS)}; give the benchmark's root"
                )
            config["ijb_sets"][name] = world[name]


def verification_files(config: dict[str, Any]) -> dict[str, str]:
    """The files of each verification set (a validated config): name -> the .bin; an LFW
    tree gives ``name.pairs`` and ``name.images``."""
    files = {}
    for name, value in config["verification_sets"].items():
        if isinstance(value, dict):
            files.update({f"{name}.pairs": value["pairs"], f"{name}.images": value["images"]})
        else:
            files[name] = value
    return files


def user_inputs(config: dict[str, Any]) -> dict[str, str]:
    """Configured input files that no rule makes (a validated config): key -> path.

    Paths that derive from ``results`` (the world's sets and reference network, detected
    landmarks, the covariates store) are made by rules and left out.
    """
    results = config["results"]
    made = set(world_paths(results).values()) | {detected_landmarks_path(results)}
    inputs = {
        "generator.checkpoint": config["generator"]["checkpoint"],
        "reference_fr.checkpoint": config["reference_fr"]["checkpoint"],
        "covariates.multipie": config["covariates"]["multipie"],
        "covariates.landmarks": config["covariates"]["landmarks"],
        **{f"verification_sets.{k}": v for k, v in verification_files(config).items()},
        **{f"ijb_sets.{k}": v for k, v in config["ijb_sets"].items()},
        **{
            f"real_models.{k}.checkpoint": m["checkpoint"] for k, m in config["real_models"].items()
        },
        **{f"real_faces.{k}.path": c["path"] for k, c in config["real_faces"].items()},
    }
    return {k: v for k, v in inputs.items() if v is not None and v not in made}


def check_inputs(config: dict[str, Any], source: str = "config") -> None:
    """One line naming the key of the first configured input file that does not exist (the
    workflow calls this before building its DAG; check-config does not, so that a config can
    be checked on a machine without the data)."""
    for key, path in user_inputs(config).items():
        if not Path(path).exists():
            raise UserError(f"{source}: {key}: {path} does not exist")


def load(path: str | Path, generator: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it; ``generator`` overrides keys of that section
    (the command line's ``--checkpoint``)."""
    data = read_yaml(path)
    if generator:
        data["generator"] = dict(data.get("generator") or {}) | dict(generator)
    return validate(data, source=str(path))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a dict; a syntax error is one line with its line and column."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None)
        raise UserError(f"{path}:{where} not valid YAML ({problem or 'syntax error'})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level")
    return data


def documented_keys(node: dict | None = None, prefix: str = "") -> list[str]:
    """Every key path of the schema (``world.multipie.subjects``), for the docs test.

    Shared definitions (``$defs``) are listed once under their own name (``recipe.arch``),
    not under every key that refers to them.
    """
    top = node is None
    node = schema() if node is None else node
    keys = []
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        keys.append(path)
        keys += documented_keys(sub, path + ".")
    if top:
        for name, sub in node.get("$defs", {}).items():
            keys += documented_keys(sub, name + ".")
    return keys


# ---------------------------------------------------------------------------------------------
# Parameter dataclasses of the stages, held to the schema's $defs.


def _frozen(value: Any) -> Any:
    """YAML lists as tuples (dataclass fields are immutable and hashable)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    """Tuples as lists again, for JSON-schema validation."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def defaults(definition: str) -> dict[str, Any]:
    """The defaults of ``$defs/<definition>`` by key (lists as tuples); required keys have none."""
    properties = schema()["$defs"][definition]["properties"]
    return {
        k: _frozen(copy.deepcopy(p["default"])) for k, p in properties.items() if "default" in p
    }


@cache
def _definition_validator(definition: str) -> jsonschema.protocols.Validator:
    root = schema()
    return jsonschema.Draft202012Validator(
        {"$defs": root["$defs"], "$ref": f"#/$defs/{definition}"}
    )


def check_params(params: Any, definition: str, key: str) -> None:
    """Hold the frozen dataclass ``params`` to ``$defs/<definition>``; store floats as float.

    The first problem is a UserError naming ``config <key>.<field>``. Numbers given as integers
    in ``number`` fields become floats, so 20 and 20.0 give one provenance.
    """
    values = {f.name: _plain(getattr(params, f.name)) for f in dataclasses.fields(params)}
    problem = _first_problem(_definition_validator(definition), values)
    if problem:
        raise UserError(f"config {key}.{problem}")
    properties = schema()["$defs"][definition]["properties"]
    for name, value in values.items():
        types = properties[name].get("type", [])
        if "number" in types and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(params, name, float(value))


def from_section(cls: type, section: Mapping[str, Any] | None, key: str) -> Any:
    """Build the (frozen) dataclass ``cls`` from a config section.

    Unknown keys are a one-line error naming ``key``; missing keys take the dataclass defaults
    (the schema's); YAML lists become tuples. The class's own checks name its generic
    ``CONFIG_KEY`` (``identities``); their errors are given this section's ``key``
    (``identities.langevin``) instead.
    """
    section = dict(section or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise UserError(
            f"config {key}: unknown key {unknown[0]!r}; expected one of {', '.join(known)}"
        )
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in section
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"config {key}: missing required key {missing[0]!r}")
    try:
        return cls(**{k: _frozen(v) for k, v in section.items()})
    except UserError as exc:
        # The class names its generic key (config identities.n); name this section's instead.
        generic = f"config {getattr(cls, 'CONFIG_KEY', key)}"
        text = str(exc)
        if key != generic[len("config ") :] and text.startswith(generic):
            raise UserError(f"config {key}{text[len(generic) :]}") from None
        raise


class SchemaParams:
    """Base of the frozen parameter dataclasses that the schema's ``$defs`` define.

    A subclass names its definition (``SCHEMA``) and its config key (``CONFIG_KEY``, named in
    messages), takes its field defaults from ``defaults(SCHEMA)``, and may add rules that
    involve several fields in ``check``. Built from code or from a config section, its values
    meet the schema's limits.
    """

    SCHEMA: ClassVar[str]
    CONFIG_KEY: ClassVar[str]

    def __post_init__(self) -> None:
        check_params(self, self.SCHEMA, self.CONFIG_KEY)
        self.check()

    def check(self) -> None:
        """Rules across fields, beyond the schema (none by default)."""

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, key: str | None = None) -> Any:
        """Params from a config section (``key`` names it in errors, e.g. identities.lang)."""
        return from_section(cls, section, key or cls.CONFIG_KEY)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
