"""The workflow through a real SLURM: `snakemake --profile slurm` from the repository root
against a single-node cluster on this machine (tests/slurm/start.sh: slurmctld, slurmd,
slurmdbd and MariaDB, two stand-in GPUs). Needs root and apt-get (or SLURM installed)."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from brownface import config as brownface_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
SCRIPTS = REPO / "tests" / "slurm"

#: The tiny world pipeline (as tests/test_workflow.py's FULL) with one verification set and
#: no IJB set, run to the report and the datasets (the world's unused sets are left out), so
#: that the chain of jobs is short; one thread a job, so that two run at once.
CONFIG = {
    "world": {
        "multipie": {"subjects": 2, "image_size": 64, "flashes": [0, 1, 7, 11],
                     "cameras": ["11_0", "14_0", "05_1", "05_0", "24_0"]},
        "benchmarks": {"lfw_pairs_per_fold": 2, "image_size": 64},
        "reference_fr": {"identities": 16, "images_per_identity": 4,
                         "recipe": {"epochs": 1, "milestones": [1], "batch_size": 16}},
    },
    "covariates": {"projection": {"steps": 5, "batch_size": 16}},
    "identities": {"lang": {"algorithm": "langevin", "n": 8, "iterations": 2}},
    "variations": {"disco": {"algorithm": "disco", "variations": 2, "iterations": 1,
                             "sigma": 0.1, "r_w": 3.0}},
    "datasets": {"tiny": {"identities": "lang", "variations": "disco", "shards": 2}},
    "training": {
        "validation": ["lfw"],
        "recipe": {"arch": "iresnet", "layers": [1, 1, 1, 1], "widths": [4, 8, 8, 16],
                   "input_size": 16, "embedding_size": 16, "batch_size": 8, "epochs": 1,
                   "milestones": [1], "workers": 0},
    },
    "verification_sets": {"lfw": None},
    "ijb_sets": {},
}  # fmt: skip


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it installs and starts a SLURM on localhost)"
    installed = all(shutil.which(d) for d in ("slurmctld", "slurmd", "slurmdbd", "munged"))
    if not installed and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable())),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node SLURM, stopped when the module's tests are done (pass or fail)."""
    state = tmp_path_factory.mktemp("slurm")
    try:
        start = subprocess.run(
            ["bash", str(SCRIPTS / "start.sh"), str(state)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert start.returncode == 0, start.stderr[-3000:]
        yield state
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop.sh"), str(state)], timeout=120)


def run_profile(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake --profile slurm` from the repository root, plus the test's override."""
    return subprocess.run(
        [SNAKEMAKE, "--profile", "slurm", "--profile", "tests/slurm/profile",
         "-d", str(workdir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip


def submitted(out: str) -> dict[str, str]:
    """SLURM job id -> rule of every job the run submitted; asserts that each job that is not
    a local rule (Snakemake prints those as "localrule") was submitted."""
    rules = {}
    for block in out.split("\nrule ")[1:]:
        job = re.search(r"\n\s+jobid: (\d+)", block)
        rules[job.group(1)] = block.split(":", 1)[0]
    ids = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
    assert ids.keys() == rules.keys(), (sorted(ids), sorted(rules))
    return {slurm_id: rules[job] for job, slurm_id in ids.items()}


def accounting(jobs: dict[str, str], timeout: float = 60) -> dict[str, dict[str, str]]:
    """sacct's record of each job (state, allocated TRES, comment), polled until every job
    has reached a final state (accounting lags the controller by a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-j", ",".join(jobs),
             "-o", "JobID,State,AllocTRES,Comment"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        rows = {}
        for line in listed.splitlines():
            job, state, tres, comment = line.split("|", 3)
            rows[job] = {"state": state.split()[0], "tres": tres, "comment": comment}
        final = all(r["state"] not in ("PENDING", "RUNNING") for r in rows.values())
        if (set(rows) == set(jobs) and final) or time.monotonic() > deadline:
            return rows
        time.sleep(1)


def tres(text: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)


def test_the_tiny_pipeline_runs_through_slurm(cluster, tmp_path):
    stages = brownface_config.schema()["properties"]["resources"]["properties"]
    config = {**CONFIG, "resources": {rule: {"threads": 1} for rule in stages}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_profile(tmp_path, "report", "datasets")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert "Using profiles slurm and tests/slurm/profile and workflow specific profile" in out
    results = tmp_path / "results"
    for rel in ("report/table.md", "training/tiny/model.pt", "datasets/tiny/rendered/index.csv",
                "evaluation/tiny/lfw.json", "world/reference_fr/model.pt"):  # fmt: skip
        assert (results / rel).is_file(), rel
    assert "tiny (8 x 3)" in (results / "report" / "table.md").read_text()

    # Every job ran as a SLURM job, completed, and got its stage's resources.
    jobs = submitted(out)
    assert len(jobs) >= 20 and "report_table" in jobs.values()
    record = accounting(jobs)
    assert {r["state"] for r in record.values()} == {"COMPLETED"}, record
    validated = brownface_config.validate(yaml.safe_load(yaml.safe_dump(config)))
    for slurm_id, rule in jobs.items():
        allocated, asked = tres(record[slurm_id]["tres"]), validated["resources"][rule]
        assert record[slurm_id]["comment"].startswith(f"rule_{rule}"), record[slurm_id]
        assert allocated["cpu"] == "1" and allocated["mem"] == f"{asked['mem_mb']}M", rule
        assert allocated.get("gres/gpu", "0") == str(asked["gpu"]), (rule, allocated)
    gpu_rules = {rule for rule in jobs.values() if validated["resources"][rule]["gpu"]}
    assert {"train_fr", "sample_identities", "render_dataset"} <= gpu_rules

    # A job that fails: a verification set that is not a .bin file. SLURM records it as
    # FAILED and the workflow says so and exits non-zero.
    (tmp_path / "broken.bin").write_bytes(b"not a pickle")
    (tmp_path / "config" / "broken.yaml").write_text(
        yaml.safe_dump({"verification_sets": {"lfw": None, "broken": str(tmp_path / "broken.bin")}})
    )
    target = "results/evaluation/tiny/broken.json"
    failed = run_profile(tmp_path, target, "--configfile", str(tmp_path / "config" / "broken.yaml"))
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0, out[-3000:]
    jobs = submitted(out)
    assert list(jobs.values()) == ["evaluate_verification"], out[-3000:]
    (slurm_id,) = jobs
    assert accounting(jobs)[slurm_id]["state"] == "FAILED"
    assert f"SLURM-job '{slurm_id}' failed" in out
    assert not (tmp_path / target).exists()
