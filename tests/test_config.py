"""Config validation: defaults filled, one clear line per mistake, docs in step with schema."""

from pathlib import Path

import pytest

from brownface import config
from brownface.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_embedded_default_validates_and_fills_defaults():
    cfg = config.load(REPO / "config" / "config.yaml")
    assert cfg["world"]["multipie"]["subjects"] == 40
    assert cfg["world"]["benchmarks"]["lfw_pairs_per_fold"] == 300
    assert cfg["generator"]["truncation_psi"] == 0.7


def test_empty_config_gets_every_default():
    cfg = config.validate({})
    assert cfg["world"]["seed"] == 0 and cfg["world"]["multipie"]["flashes"][4] == 7


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            {"world": {"multipie": {"subjects": 0}}},
            "world.multipie.subjects: expected a value >= 1, got 0",
        ),
        ({"world": {"multipie": {"subjets": 3}}}, "world.multipie: unknown key 'subjets'"),
        ({"seed": "one"}, "seed: expected integer, got 'one'"),
        ({"generator": {"kind": "gan"}}, "generator.kind: expected one of 'world', got 'gan'"),
        ({"device": "gpu"}, "device:"),
        (
            {"world": {"multipie": {"cameras": ["99_9"]}}},
            "world.multipie.cameras.0: expected one of",
        ),
        ({"bogus": 1}, "unknown key 'bogus'"),
    ],
)
def test_mistakes_give_one_line_naming_the_key(bad, expected):
    with pytest.raises(UserError) as err:
        config.validate(bad)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_bad_yaml_and_missing_file_are_clear(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("world: [unclosed\n")
    with pytest.raises(UserError, match="broken.yaml: line 2 not valid YAML"):
        config.load(broken)
    with pytest.raises(UserError, match="config file not found"):
        config.load(tmp_path / "missing.yaml")


def test_every_schema_key_is_documented_in_config_readme():
    readme = (REPO / "config" / "README.md").read_text()
    missing = [key for key in config.documented_keys() if f"`{key}`" not in readme]
    assert not missing, f"config/README.md lacks: {missing}"


def test_workflow_schema_is_the_package_schema():
    linked = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert linked.resolve() == (REPO / "src" / "brownface" / "config.schema.yaml").resolve()


def test_dataset_must_name_existing_recipes():
    cfg = {
        "identities": {"lang": {"algorithm": "langevin", "n": 10}},
        "variations": {"disp": {"algorithm": "dispersion"}},
        "datasets": {"demo": {"identities": "lang", "variations": "disco"}},
    }
    with pytest.raises(
        UserError, match="datasets.demo.variations: no variations recipe named 'disco'"
    ):
        config.validate(cfg)
    cfg["datasets"]["demo"]["variations"] = "disp"
    assert config.validate(cfg)["datasets"]["demo"]["shards"] == 1


def test_validation_sets_must_exist():
    with pytest.raises(
        UserError, match="training.validation: no verification set named 'agedb_30'"
    ):
        config.validate({"training": {"validation": ["agedb_30"]}})
