"""Langevin on 2 torchrun ranks (gloo, this CPU): the same store as one rank, bit for bit, and
checkpoints that resume on any number of ranks."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from worldkit import WORLD_SPEC, small_fr_file

from brownface.sampling.launch import run_identities
from brownface.store import IdentityStore

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
#: 10 identities in batches of 3: ranks own [0, 6) and [6, 10), the last batch short.
RECIPE = dict(algorithm="langevin", n=10, iterations=4, batch_size=3, checkpoint_every=1)


def job(tmp_path, name, fr, gpus, **extra):
    out = tmp_path / name
    return {
        "generator": WORLD_SPEC.to_dict(),
        "reference_fr": {"kind": "brownface", "checkpoint": fr.checkpoint},
        "recipe": {**RECIPE, "gpus": gpus},
        "name": name,
        "seed": 3,
        "device": "cpu",
        "out": str(out / "identities.h5"),
        "stats": str(out / "stats.csv"),
        "checkpoint": str(out / "checkpoint.h5"),
        **extra,
    }


def result(j):
    store = IdentityStore.read(j["out"])
    stats = pd.read_csv(j["stats"]).drop(columns="wall_time")
    return store, stats


def assert_same(a, b):
    (sa, ta), (sb, tb) = a, b
    assert np.array_equal(sa.w, sb.w) and np.array_equal(sa.embedding, sb.embedding)
    pd.testing.assert_frame_equal(ta, tb, check_exact=True)


@pytest.fixture
def threads_1():
    """Every process computes with one thread: the ranks get threads // gpus = 1 each, and a
    CPU kernel's summation order (so its last bits) may depend on its thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_two_ranks_give_the_one_rank_store_and_resume_across_rank_counts(
    tmp_path, caplog, threads_1
):
    caplog.set_level("INFO")
    fr = small_fr_file(tmp_path / "fr.pt")
    one = job(tmp_path, "one", fr, 1)
    run_identities(one)
    reference = result(one)
    assert reference[1].shape[0] == RECIPE["iterations"]

    two = job(tmp_path, "two", fr, 2)
    run_identities(two, threads=2)
    assert_same(result(two), reference)
    assert IdentityStore.read(two["out"]).provenance["identity_params"]["gpus"] == 2

    # Stopped on 2 ranks after 2 iterations, as a preempted job: a checkpoint, no store ...
    moved = job(tmp_path, "moved", fr, 2, stop_after=2)
    run_identities(moved, threads=2)
    assert not (tmp_path / "moved" / "identities.h5").exists()
    # ... resumed on 1 rank (gpus is not part of the run's fingerprint).
    resumed = {**moved, "recipe": {**moved["recipe"], "gpus": 1}, "stop_after": None}
    caplog.clear()
    run_identities(resumed)
    assert "at iteration 2" in caplog.text
    assert_same(result(resumed), reference)

    # And the other way: stopped on 1 rank, finished on 2.
    back = job(tmp_path, "back", fr, 1, stop_after=3)
    run_identities(back)
    caplog.clear()
    run_identities({**back, "recipe": {**back["recipe"], "gpus": 2}, "stop_after": None}, 2)
    assert "rank 0: INFO brownface.sampling.langevin: langevin: resuming" in caplog.text
    assert "at iteration 3" in caplog.text
    assert_same(result(back), reference)


@pytest.mark.slow
def test_a_rank_without_identities_still_takes_part(tmp_path, threads_1):
    """n = 2 in batches of 4: rank 1 owns nothing, sends empty slices, and the store is the
    one-rank store."""
    fr = small_fr_file(tmp_path / "fr.pt")
    small = {"n": 2, "batch_size": 4, "iterations": 2}
    one, two = job(tmp_path, "one", fr, 1), job(tmp_path, "two", fr, 2)
    for j in (one, two):
        j["recipe"].update(small)
    run_identities(one)
    run_identities(two, threads=2)
    assert_same(result(two), result(one))


@pytest.mark.slow
def test_the_identities_rule_runs_a_two_gpu_recipe_on_two_ranks(tmp_path):
    """identities.<name>.gpus: 2 -> the job asks for 2 GPUs and runs torchrun with 2 ranks
    (gloo on this CPU); rank 0 writes the store and the job file is gone."""
    work = tmp_path / "work"
    fr = small_fr_file(tmp_path / "fr.pt")
    config = {
        "reference_fr": {"kind": "brownface", "checkpoint": fr.checkpoint},
        "identities": {"lang": {**RECIPE, "iterations": 2, "gpus": 2}},
        "variations": {"disco": {"algorithm": "disco", "variations": 2, "iterations": 1}},
        "datasets": {"tiny": {"identities": "lang", "variations": "disco"}},
    }
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/identities/lang/identities.h5"
    base = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2", target]
    plan = subprocess.run([*base, "-n"], capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "gpu=2" in plan.stdout + plan.stderr
    run = subprocess.run(base, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    log = (work / "results" / "logs" / "identities" / "lang.log").read_text()
    assert "running on 2 ranks" in log and "--nproc-per-node=2" in log
    store = IdentityStore.read(work / target)
    assert store.w.shape == (10, 32) and store.provenance["identity_params"]["gpus"] == 2
    assert not list((work / "results" / "checkpoints").rglob("*.job.json"))
