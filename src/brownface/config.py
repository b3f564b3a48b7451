"""Loading and validating the workflow config against its JSON schema.

The schema (``config.schema.yaml``, shipped in the package and linked from
``workflow/schemas/``) is the one home of defaults and descriptions. Validation fills the
defaults and turns the first problem into one line naming the key and what was expected.
An object default marked ``x-merge-default: true`` also fills the keys a partial override
leaves out (so ``world.reference_fr.recipe: {epochs: 2}`` keeps the rest of the world recipe).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from brownface.errors import UserError


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
    if v == "required":
        return f"{key}: {error.message}"
    return f"{key}: {error.message}"


def validate(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it; UserError on problems."""
    if not isinstance(config, dict):
        raise UserError(f"{source}: expected a mapping of keys at the top level")
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise UserError(f"{source}: {_describe(best)}")
    _check_references(config, source)
    return config


def _check_references(config: dict[str, Any], source: str) -> None:
    """Names that must refer to other entries of the config."""
    for name, dataset in config["datasets"].items():
        for kind in ("identities", "variations"):
            if dataset[kind] not in config[kind]:
                known = ", ".join(sorted(config[kind])) or "none defined"
                raise UserError(
                    f"{source}: datasets.{name}.{kind}: no {kind} recipe named "
                    f"{dataset[kind]!r} (known: {known})"
                )
    for name in config["training"]["validation"]:
        if name not in config["verification_sets"]:
            known = ", ".join(sorted(config["verification_sets"])) or "none defined"
            raise UserError(
                f"{source}: training.validation: no verification set named {name!r} (known: {known})"
            )


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML") from None
    return validate(data if data is not None else {}, source=str(path))


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


def from_section(cls: type, section: Mapping[str, Any] | None, key: str) -> Any:
    """Build the (frozen) dataclass ``cls`` from a config section.

    Unknown keys are a one-line error naming ``key``; missing keys take the dataclass defaults;
    YAML lists become tuples (the dataclasses are hashable and immutable).
    """
    section = dict(section or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise UserError(
            f"config {key}: unknown key {unknown[0]!r}; expected one of {', '.join(known)}"
        )
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})


def check_number_fields(params: Any, bad: Callable[[str, str], UserError]) -> None:
    """Refuse a non-integer in an ``int`` field and a non-number in a ``float`` field of the
    frozen dataclass ``params`` (YAML's true is no number; ``int | None`` fields may be None),
    and store floats as float, so 20 and 20.0 give one provenance. ``bad(key, want)`` builds
    the error naming the config key."""
    for f in dataclasses.fields(params):
        value, kind = getattr(params, f.name), str(f.type)
        if value is None and kind.endswith("| None"):
            continue
        if kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad(f.name, "an integer")
        if kind.startswith("float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(f.name, "a number")
            object.__setattr__(params, f.name, float(value))
