"""Launching FR training on one or more GPUs: in this process, or under ``torchrun``.

With ``gpus`` above 1 the training job starts ``torchrun --standalone --nproc-per-node gpus``
on its own node (one rank per GPU; gloo ranks on the CPU when there is no CUDA). The ranks
read the job's arguments from a JSON file beside the checkpoint, so every rank trains exactly
what the single-process path would; :class:`brownface.train.loop.Trainer` then runs DDP from
torchrun's environment. The ranks' output is copied line by line into the job's log.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from brownface.errors import UserError
from brownface.store import atomic_path
from brownface.train.recipe import TrainRecipe
from brownface.train.stages import train_fr

log = logging.getLogger(__name__)


def torchrun_command(job_file: str | Path, gpus: int) -> list[str]:
    """The command that trains ``job_file``'s job on ``gpus`` ranks of this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={gpus}",
        "-m",
        "brownface.train.launch",
        str(job_file),
    ]


def run_training(job: dict[str, Any], gpus: int = 1, threads: int = 1) -> None:
    """Train one model: ``job`` holds :func:`brownface.train.stages.train_fr`'s arguments
    (the recipe as a dict, paths as strings), ``threads`` the job's CPU threads, shared out
    between the ranks."""
    if gpus < 1:
        raise UserError(f"training.gpus: expected a value >= 1, got {gpus}")
    if gpus == 1:
        _train(job)
        return
    job_file = Path(str(job["checkpoint"]) + ".job.json")
    job_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(job_file) as tmp:
        Path(tmp).write_text(json.dumps(job, indent=1, sort_keys=True))
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads // gpus)), PYTHONUNBUFFERED="1")
    command = torchrun_command(job_file, gpus)
    log.info("training on %d ranks: %s", gpus, " ".join(command))
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as ranks:
        assert ranks.stdout is not None
        for line in ranks.stdout:
            log.info("%s", line.rstrip())
    if ranks.returncode != 0:
        raise UserError(f"torchrun: the {gpus} training ranks failed (exit {ranks.returncode})")
    job_file.unlink()


def _train(job: dict[str, Any]) -> None:
    train_fr(
        TrainRecipe.from_config(job["recipe"]),
        name=job["name"],
        data_root=job["data_root"],
        out_dir=job["out_dir"],
        checkpoint=job["checkpoint"],
        validation=job["validation"],
        device=job["device"],
    )


def main(argv: list[str] | None = None) -> int:
    """One torchrun rank: train the job in the JSON file given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m brownface.train.launch JOB.json\n")
        return 2
    # The launching job's log adds the time; rank 0 reports progress, the others only problems.
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"rank {rank}: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        _train(json.loads(Path(args[0]).read_text()))
        if torch.distributed.is_initialized():
            torch.distributed.barrier()  # rank 0 writes the outputs; the others wait for it
    except UserError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
