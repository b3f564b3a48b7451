"""Ranks under ``torchrun``: launching a job on several processes, and what the ranks share.

A stage that runs on more than one GPU (FR training, Langevin) writes its arguments to a JSON
file beside its checkpoint and starts ``torchrun --standalone --nproc-per-node ranks`` on its
own node; every rank reads the same file, so each computes exactly what the single-process
path would. NCCL joins the ranks on CUDA, gloo on the CPU (tests and CPU-only clusters). The
ranks' output is copied line by line into the job's log; rank 0 reports progress, the others
only problems.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist

from brownface.errors import UserError
from brownface.sharding import shard_range
from brownface.store import atomic_path

log = logging.getLogger(__name__)


def torchrun_command(module: str, job_file: str | Path, ranks: int) -> list[str]:
    """The command that runs ``python -m module job_file`` on ``ranks`` ranks of this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
        "-m",
        module,
        str(job_file),
    ]


def launch(module: str, job: dict[str, Any], job_file: Path, ranks: int, threads: int) -> None:
    """Run ``module``'s rank entry point (see :func:`rank_main`) on ``ranks`` ranks under
    torchrun, with ``job`` (JSON-able) written to ``job_file``; ``threads`` CPU threads are
    shared out between the ranks. Raises UserError when a rank fails."""
    job_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(job_file) as tmp:
        Path(tmp).write_text(json.dumps(job, indent=1, sort_keys=True))
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads // ranks)), PYTHONUNBUFFERED="1")
    command = torchrun_command(module, job_file, ranks)
    log.info("running on %d ranks: %s", ranks, " ".join(command))
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.info("%s", line.rstrip())
    if proc.returncode != 0:
        raise UserError(f"torchrun: the {ranks} ranks of {module} failed (exit {proc.returncode})")
    job_file.unlink()


def rank_main(module: str, run: Callable[[dict[str, Any]], None], argv: list[str]) -> int:
    """One torchrun rank: ``run`` the job in the JSON file named by the only argument.

    Logs carry the rank (the launching job's log adds the time); a UserError is one line and
    exit 1; every rank waits for the others before the process group is closed, so rank 0's
    outputs are complete when the launcher returns.
    """
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -m {module} JOB.json\n")
        return 2
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"rank {rank}: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    try:
        run(json.loads(Path(argv[0]).read_text()))
        if dist.is_initialized():
            dist.barrier()
    except UserError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def init_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, joining the process group
    (NCCL on CUDA, else gloo) when there is more than one rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return rank, world, int(os.environ.get("LOCAL_RANK", "0"))


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """This rank's device: its own GPU (cuda:<local rank>) when the job computes on CUDA."""
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


@dataclass(frozen=True)
class Ranks:
    """The ranks sharing a data-parallel loop over n items, and the slice each one owns.

    Slices are contiguous and start on multiples of ``align`` (the batch size), so the batches
    every item is computed in are the same whatever the number of ranks: the floating-point
    bits of each item's result do not depend on it.
    """

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """The process group's ranks, or a single rank outside one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def slice(self, n: int, align: int) -> tuple[int, int]:
        """Items [start, stop) of this rank."""
        return shard_range(n, self.size, self.rank, align=align)

    def gather(self, local: torch.Tensor, n: int, align: int) -> torch.Tensor:
        """Every rank's ``local`` rows [stop - start, ...] (its :meth:`slice`), concatenated
        in rank order: [n, ...] on every rank. Gathering moves bits, it adds nothing."""
        if self.size == 1:
            return local
        counts = [b - a for a, b in (Ranks(r, self.size).slice(n, align) for r in range(self.size))]
        width = max(counts)
        padded = local.new_zeros(width, *local.shape[1:])
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:c] for p, c in zip(parts, counts)])

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()
