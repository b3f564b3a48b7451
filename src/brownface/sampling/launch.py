"""Launching the identities stage: in this process, or on several ranks under ``torchrun``.

Only Langevin couples every identity to every other, so only it runs data-parallel: with the
recipe's ``gpus`` above 1 the job starts ``torchrun --standalone --nproc-per-node gpus`` on
its node (:mod:`brownface.distributed`), and every rank runs :func:`sample_identities` on the
same job file; rank 0 writes the store.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from brownface.distributed import launch, rank_main
from brownface.models.fr import FRSpec
from brownface.models.generator import GeneratorSpec
from brownface.sampling.langevin import IdentityParams
from brownface.sampling.stages import sample_identities

MODULE = "brownface.sampling.launch"


def run_identities(job: dict[str, Any], threads: int = 1) -> None:
    """:func:`sample_identities` from a job (its arguments, specs and the recipe as dicts,
    paths as strings): in this process, or with the recipe's ``gpus`` above 1, on that many
    torchrun ranks of this node (``threads`` CPU threads shared out between them)."""
    gpus = int(job["recipe"].get("gpus", 1))
    if gpus == 1:
        _identities_job(job)
        return
    launch(MODULE, job, Path(str(job["checkpoint"]) + ".job.json"), gpus, threads)


def _identities_job(job: dict[str, Any]) -> None:
    sample_identities(
        GeneratorSpec.from_dict(job["generator"]),
        FRSpec.from_dict(job["reference_fr"]),
        IdentityParams.from_config(job["recipe"], key=f"identities.{job['name']}"),
        name=job["name"],
        seed=job["seed"],
        device=job["device"],
        out=job["out"],
        stats=job["stats"],
        checkpoint=job["checkpoint"],
        stop_after=job.get("stop_after"),
    )


def main(argv: list[str] | None = None) -> int:
    """One torchrun rank: the identities job in the JSON file given as the only argument."""
    return rank_main(MODULE, _identities_job, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
