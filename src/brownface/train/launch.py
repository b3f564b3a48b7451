"""Launching FR training on one or more GPUs: in this process, or under ``torchrun``.

With ``gpus`` above 1 the training job starts ``torchrun --standalone --nproc-per-node gpus``
on its own node (one rank per GPU; gloo ranks on the CPU when there is no CUDA). The ranks
read the job's arguments from a JSON file beside the checkpoint, so every rank trains exactly
what the single-process path would; :class:`brownface.train.loop.Trainer` then runs DDP from
torchrun's environment. The launching itself is :mod:`brownface.distributed`'s.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from brownface.distributed import launch, rank_main
from brownface.errors import UserError
from brownface.train.recipe import TrainRecipe
from brownface.train.stages import train_fr

MODULE = "brownface.train.launch"


def run_training(job: dict[str, Any], gpus: int = 1, threads: int = 1) -> None:
    """Train one model: ``job`` holds :func:`brownface.train.stages.train_fr`'s arguments
    (the recipe as a dict, paths as strings), ``threads`` the job's CPU threads, shared out
    between the ranks."""
    if gpus < 1:
        raise UserError(f"training.gpus: expected a value >= 1, got {gpus}")
    if gpus == 1:
        _train(job)
        return
    launch(MODULE, job, Path(str(job["checkpoint"]) + ".job.json"), gpus, threads)


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
    return rank_main(MODULE, _train, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
