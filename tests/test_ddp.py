"""DDP training under torchrun (2 CPU processes, gloo): both ranks step in lockstep."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
trainer = Trainer(replace(TINY, epochs=1, batch_size=8), Path({data!r}), out, out / "ckpt.pt")
trainer.run()
rank = torch.distributed.get_rank()
out.mkdir(parents=True, exist_ok=True)
torch.save(trainer.model.backbone.state_dict(), out / f"rank{{rank}}.pt")
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_two_rank_ddp_keeps_replicas_identical(tmp_path):
    data = tmp_path / "data"
    build_fr_train_set(
        FaceRenderer(64, seed=0), 0, data, identities=8, images_per_identity=8, image_size=16
    )
    script = tmp_path / "ddp_train.py"
    tests = str(Path(__file__).parent)
    script.write_text(SCRIPT.format(tests=tests, out=str(tmp_path / "out"), data=str(data)))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    a = torch.load(tmp_path / "out" / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "out" / "rank1.pt", weights_only=True)
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(a[k], b[k]) for k in params)
    assert (tmp_path / "out" / "model.pt").is_file()
