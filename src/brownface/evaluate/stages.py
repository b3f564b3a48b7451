"""Stage entry point of the evaluation rules: score an FR model on a verification set."""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.evaluate.verification import evaluate_bin, write_result_json
from brownface.models.checkpoints import sha256_file
from brownface.models.device import resolve_device
from brownface.models.fr import FRSpec, load_fr

log = logging.getLogger(__name__)


def evaluate_verification(
    model: str | Path,  # a brownface model.pt
    benchmark: str | Path,  # an insightface .bin set
    out: str | Path,  # the result JSON
    *,
    name: str,  # the benchmark's name (config verification_sets.<name>)
    device: str = "auto",
) -> None:
    """Flip-fused 10-fold accuracy of a model on a ``.bin`` set, as a result JSON.

    The JSON records the model (its name and training data, from the provenance its trainer
    wrote into model.pt, and the file's sha256) and the benchmark (name and file sha256).
    """
    dev = resolve_device(device)
    fr = load_fr(FRSpec(kind="brownface", checkpoint=str(model)), device=dev)
    result = evaluate_bin(benchmark, fr, batch_size=128, device=dev)
    model_name = fr.spec.extra.get("name") or Path(model).parent.name
    provenance = {
        "model_file": str(model),
        "model_sha256": sha256_file(model),
        "training_data": fr.spec.extra.get("training_data"),
        "benchmark_file": str(benchmark),
        "benchmark_sha256": sha256_file(benchmark),
    }
    write_result_json(out, result, model=model_name, benchmark=name, provenance=provenance)
    log.info("%s on %s: accuracy %.4f +- %.4f", model_name, name, result.accuracy, result.std)
