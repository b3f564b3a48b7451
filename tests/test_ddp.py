"""DDP training under torchrun (2 CPU processes, gloo): both ranks step in lockstep, and the
training rule with training.gpus: 2 launches exactly that run."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from brownface.world.fr_train_set import build_fr_train_set
from brownface.world.renderer import FaceRenderer

SCRIPT = """
import sys, torch
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_train import TINY
from brownface.train.loop import Trainer
out = Path({out!r})
trainer = Trainer(replace(TINY, **{changes!r}), Path({data!r}), out, out / "ckpt.pt")
trainer.run()
rank = torch.distributed.get_rank()
out.mkdir(parents=True, exist_ok=True)
torch.save(trainer.model.backbone.state_dict(), out / f"rank{{rank}}.pt")
torch.distributed.destroy_process_group()
"""


REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
CHANGES = {"epochs": 1, "batch_size": 8}


def tiny_data(root: Path) -> None:
    build_fr_train_set(
        FaceRenderer(64, seed=0), 0, root, identities=8, images_per_identity=8, image_size=16
    )


def ddp_train(tmp_path: Path, data: Path) -> Path:
    """The trainer under torchrun on 2 CPU ranks; returns its output directory."""
    script = tmp_path / "ddp_train.py"
    tests, out = str(Path(__file__).parent), tmp_path / "out"
    script.write_text(SCRIPT.format(tests=tests, out=str(out), data=str(data), changes=CHANGES))
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_two_rank_ddp_keeps_replicas_identical(tmp_path):
    data = tmp_path / "data"
    tiny_data(data)
    out = ddp_train(tmp_path, data)
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(a[k], b[k]) for k in params)
    assert (out / "model.pt").is_file()


@pytest.mark.slow
def test_the_training_rule_on_two_ranks_trains_the_ddp_model(tmp_path):
    """training.gpus: 2 -> the train_fr job asks for 2 GPUs and runs torchrun with 2 ranks
    (gloo on this CPU), and its model.pt is the one the trainer's own DDP run makes."""
    from test_train import TINY

    work = tmp_path / "work"
    tiny_data(work / "results" / "datasets" / "tiny" / "rendered")  # a placed dataset
    recipe = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(dataclasses.replace(TINY, **CHANGES)).items()
    }
    config = {
        "identities": {"lang": {"algorithm": "langevin", "n": 8, "iterations": 1}},
        "variations": {"disco": {"algorithm": "disco", "variations": 2, "iterations": 1}},
        "datasets": {"tiny": {"identities": "lang", "variations": "disco"}},
        "training": {"gpus": 2, "validation": [], "recipe": recipe},
    }
    (work / "config").mkdir()
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/training/tiny/model.pt"
    base = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2", target]
    plan = subprocess.run([*base, "-n"], capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "gpu=2" in plan.stdout + plan.stderr  # the job's resources
    run = subprocess.run(base, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    log = (work / "results" / "logs" / "training" / "tiny.log").read_text()
    assert "running on 2 ranks" in log and "--nproc-per-node=2" in log
    assert not list((work / "results" / "checkpoints").rglob("*.job.json"))

    direct = ddp_train(tmp_path, work / "results" / "datasets" / "tiny" / "rendered")
    ours, theirs = weights(work / target), weights(direct / "model.pt")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
