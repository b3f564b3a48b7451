"""Config validation: defaults filled, one clear line per mistake, docs in step with schema."""

from pathlib import Path

import pytest

from brownface import config
from brownface.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_embedded_default_validates_and_fills_defaults():
    cfg = config.load(REPO / "config" / "config.yaml")
    assert cfg["world"]["multipie"]["subjects"] == 8  # the SVMs' subjects only
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
        (
            {"generator": {"kind": "gan"}},
            "generator.kind: expected one of 'world', 'stylegan2', got 'gan'",
        ),
        ({"device": "gpu"}, "device:"),
        (
            {"world": {"multipie": {"cameras": ["99_9"]}}},
            "world.multipie.cameras.0: expected one of",
        ),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"covariates": {"projection": {"step": 3}}}, "covariates.projection: unknown key 'step'"),
        (
            {"covariates": {"projection": {"lr_rampup": 0}}},
            "covariates.projection.lr_rampup: expected a value > 0, got 0",
        ),
        ({"covariates": {"subsets": {"poses": []}}}, "covariates.subsets: unknown key 'poses'"),
        (
            {"covariates": {"subsets": {"pose_flashes": [19]}}},
            "covariates.subsets.pose_flashes.0: expected a value <= 18, got 19",
        ),
        ({"generator": {"noise_mode": "on"}}, "generator.noise_mode: expected one of"),
        ({"generator": {"crop": [[1, 2]]}}, "generator.crop: expected >= 5 items, got 1"),
        (
            {"reference_fr": {"kind": "iresnet"}},
            "reference_fr.checkpoint: kind iresnet needs a checkpoint file",
        ),
        (
            {"verification_sets": {"agedb_30": None}, "training": {"validation": []}},
            "verification_sets.agedb_30: null means",
        ),
        (
            {"identities": {"x": {"algorithm": "langevin", "n": 5, "timestep": 0}}},
            "identities.x.timestep: expected a value other than 0",
        ),
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
    with pytest.raises(UserError, match=r"broken.yaml: line 2 column 1: not valid YAML \(expected"):
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


def test_real_models_are_named_apart_and_their_checkpoints_checked(tmp_path):
    casia = {"label": "CASIA-WebFace", "kind": "adaface", "checkpoint": str(tmp_path / "a.ckpt")}
    cfg = config.validate({"real_models": {"casia": dict(casia)}})
    assert cfg["real_models"]["casia"]["arch"] == "iresnet50"  # the schema's defaults filled
    with pytest.raises(UserError, match="real_models.casia.checkpoint: .*a.ckpt does not exist"):
        config.check_inputs(cfg)
    (tmp_path / "a.ckpt").touch()
    config.check_inputs(cfg)
    datasets = {
        "identities": {"lang": {"algorithm": "langevin", "n": 10}},
        "variations": {"disp": {"algorithm": "dispersion"}},
        "datasets": {"demo": {"identities": "lang", "variations": "disp"}},
    }
    for name in ("demo", "world_reference_fr", "a/b"):
        with pytest.raises(UserError, match=f"real_models.{name}: a model name must be"):
            config.validate({**datasets, "real_models": {name: dict(casia)}})
    with pytest.raises(UserError, match="label"):
        config.validate({"real_models": {"casia": {"kind": "adaface", "checkpoint": "x"}}})


def test_default_paths_derive_from_results():
    cfg = config.validate({"results": "elsewhere"})
    assert cfg["reference_fr"]["checkpoint"] == "elsewhere/world/reference_fr/model.pt"
    assert cfg["covariates"]["path"] == "elsewhere/covariates/covariates.h5"
    assert cfg["covariates"]["multipie"] == "elsewhere/world/multipie"
    assert cfg["covariates"]["landmarks"] == "elsewhere/world/multipie_landmarks.csv"
    assert cfg["verification_sets"] == {
        "lfw": "elsewhere/world/benchmarks/lfw.bin",
        "cfp_fp": "elsewhere/world/benchmarks/cfp_fp.bin",
    }
    given = config.validate(
        {"verification_sets": {"lfw": "/data/lfw.bin"}, "training": {"validation": ["lfw"]}}
    )
    assert given["verification_sets"] == {"lfw": "/data/lfw.bin"}


def test_parameter_dataclasses_hold_the_schema_defaults_and_keys():
    """The dataclasses read their defaults from the schema; their fields are its keys."""
    import dataclasses

    from brownface.covariates.projection import ProjectionParams
    from brownface.covariates.reader import SubsetRules
    from brownface.sampling.dispersion import VariationParams
    from brownface.sampling.langevin import IdentityParams
    from brownface.train.recipe import TrainRecipe

    required = {
        "identity_recipe": {"algorithm": "langevin", "n": 2},
        "variation_recipe": {"algorithm": "disco"},
    }
    for cls, name in [
        (IdentityParams, "identity_recipe"),
        (VariationParams, "variation_recipe"),
        (ProjectionParams, "projection"),
        (SubsetRules, "subsets"),
        (TrainRecipe, "recipe"),
    ]:
        props = config.schema()["$defs"][name]["properties"]
        assert [f.name for f in dataclasses.fields(cls)] == list(props), name
        built = dataclasses.asdict(cls(**required.get(name, {})))
        for key, prop in props.items():
            if "default" in prop:
                want = prop["default"]
                got = built[key]
                assert (list(got) if isinstance(got, tuple) else got) == want, (name, key)


def test_subset_cameras_are_multipie_cameras():
    from brownface.covariates.multipie import ALL_CAMERAS, FLASHES

    defs = config.schema()["$defs"]
    assert tuple(defs["multipie_camera"]["enum"]) == ALL_CAMERAS
    flash = defs["multipie_flash"]
    assert (flash["minimum"], flash["maximum"]) == (FLASHES[0], FLASHES[-1])


def test_real_faces_null_is_the_world_training_set_and_avoid_may_name_a_collection():
    cfg = config.validate(
        {
            "results": "out",
            "real_faces": {"world_training": {"source": "generator_frames", "path": None}},
            "identities": {
                "lang": {"algorithm": "langevin", "n": 4, "avoid": "world_training"},
                "free": {"algorithm": "langevin", "n": 4, "avoid": "other.h5"},
            },
            "capacity": {"identities": "lang", "ns": [2, 4]},
        }
    )
    assert cfg["real_faces"]["world_training"]["path"] == "out/world/training_faces"
    assert cfg["identities"]["lang"]["avoid"] == "out/leakage/world_training/embeddings.h5"
    assert cfg["identities"]["free"]["avoid"] == "other.h5"  # a store's path stays a path
    assert cfg["world"]["training_set"] == {
        "identities": 50,
        "share": 0.1,
        "images_per_identity": 2,
    }
    with pytest.raises(
        UserError, match=r"real_faces.people.path: null means the world's training faces"
    ):
        config.validate({"real_faces": {"people": {"source": "image_folder", "path": None}}})
    with pytest.raises(UserError, match="capacity.identities: no identities recipe named 'x'"):
        config.validate({"capacity": {"identities": "x", "ns": [2]}})
