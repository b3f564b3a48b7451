"""The study: per-seed configs, the paper's orderings, and their verdicts over seeds."""

import copy
import json

import pytest

from brownface import config as brownface_config
from brownface.errors import UserError
from brownface.report.study import judge, paper_claims, seed_config, study_report

BASE = {
    "identities": {
        "random": {"algorithm": "random", "n": 10},
        "langevin": {"algorithm": "langevin", "n": 10},
    },
    "variations": {
        "dispersion": {"algorithm": "dispersion", "variations": 2},
        "disco": {"algorithm": "disco", "variations": 2},
    },
    "datasets": {
        "random-dispersion": {"identities": "random", "variations": "dispersion"},
        "langevin-dispersion": {"identities": "langevin", "variations": "dispersion"},
        "langevin-disco": {"identities": "langevin", "variations": "disco"},
    },
    "ijb_sets": {},
}


def test_seed_config_varies_world_sampling_and_training_seeds():
    cfg = seed_config(BASE, 3, "study/seed3/results")
    assert cfg["seed"] == 3 and cfg["world"]["seed"] == 3
    assert cfg["world"]["reference_fr"]["recipe"]["seed"] == 3
    assert cfg["training"]["recipe"]["seed"] == 3 and cfg["results"] == "study/seed3/results"
    assert "seed" not in BASE  # the base is untouched
    # The base's own seeds are not written again: that run has the base's parameters exactly.
    assert seed_config(BASE, 0, "r") == {**BASE, "results": "r"}
    brownface_config.validate(copy.deepcopy(cfg))  # a valid config


def test_the_papers_orderings_among_the_configured_datasets():
    claims = paper_claims(brownface_config.validate(copy.deepcopy(BASE)))
    assert [(c.better, c.worse) for c in claims] == [
        ("langevin-dispersion", "random-dispersion"),
        ("langevin-disco", "langevin-dispersion"),
    ]


def test_verdicts():
    assert judge([3.0, 3.1, 2.9])[1] == "holds"
    assert judge([-3.0, -3.1, -2.9])[1] == "reversed"
    assert judge([3.0, -2.0, 0.5])[1] == "unresolved"
    assert judge([1.0])[1] == "unresolved"  # one seed proves nothing


def test_study_report_tables_and_claims(tmp_path):
    casia = {"label": "CASIA-WebFace", "kind": "adaface", "checkpoint": "casia.ckpt"}
    config = brownface_config.validate({**copy.deepcopy(BASE), "real_models": {"casia": casia}})
    # lfw: Langevin beats random by ~3 at every seed; DisCo and Dispersion trade places.
    values = {
        "casia": ([97, 97, 97], [92, 92, 92]),
        "random-dispersion": ([80, 81, 82], [60, 61, 62]),
        "langevin-dispersion": ([83, 84.1, 84.9], [62, 60, 63]),
        "langevin-disco": ([84, 83, 86], [58, 57, 59]),
        "world_reference_fr": ([99, 99, 99], [95, 95, 95]),
    }
    runs = {}
    for seed in range(3):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        paths = []
        for model, (lfw, cfp) in values.items():
            for bench, acc in (("lfw", lfw[seed]), ("cfp_fp", cfp[seed])):
                path = run / f"{model}-{bench}.json"
                path.write_text(
                    json.dumps(
                        {"model": model, "benchmark": bench, "accuracy": acc / 100, "std": 0.01}
                    )
                )
                paths.append(path)
        runs[seed] = paths
    claims = study_report(runs, config, tmp_path)
    verdict = claims.set_index(["better", "column"])["verdict"]
    assert verdict[("langevin-dispersion", "lfw")] == "holds"
    assert verdict[("langevin-disco", "cfp_fp")] == "reversed"  # 4, 3, 4 points below
    assert verdict[("langevin-disco", "lfw")] == "unresolved"
    table = (tmp_path / "study_table.md").read_text()
    assert (
        "langevin-dispersion (3 seeds)" in table
        and "real data (world identities, 3 seeds)" in table
    )
    assert "84.00 ± 0.95" in table  # mean and std over the seeds
    lines = table.splitlines()
    assert lines[2].startswith("| real data (world") and lines[3].startswith("| CASIA-WebFace ")
    assert "97.00 ± 0.00" in lines[3]  # one checkpoint: no spread over the seeds
    assert "holds" in (tmp_path / "claims.md").read_text()
    with pytest.raises(UserError, match="no evaluation result of model 'x@seed0' on 'lfw'"):
        other = {**config, "datasets": {"x": BASE["datasets"]["random-dispersion"]}}
        study_report({0: runs[0], 1: runs[1]}, other, tmp_path / "other")
