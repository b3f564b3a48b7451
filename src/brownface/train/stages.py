"""Stage entry points: train an FR model on a dataset directory; evaluate one on a set."""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.evaluate.binfile import read_bin
from brownface.evaluate.verification import evaluate_bin, write_result_json
from brownface.models.factory import resolve_device
from brownface.models.fr import load_fr
from brownface.runlog import progress
from brownface.train.loop import Trainer, ValidationSet
from brownface.train.recipe import TrainRecipe

log = logging.getLogger(__name__)


def load_validation_sets(paths: dict[str, str]) -> list[ValidationSet]:
    """Decode the named ``.bin`` sets once, for per-epoch validation."""
    sets = []
    for name, path in paths.items():
        vs = read_bin(path)
        sets.append(ValidationSet(name, vs.images, vs.issame))
        log.info("validation set %s: %d pairs from %s", name, len(vs.issame), path)
    return sets


def train_fr(
    recipe: dict,
    data_root: str | Path,
    out_dir: str | Path,
    checkpoint: str | Path,
    validation: dict[str, str],
    device: str = "auto",
) -> None:
    """Train (or resume) and write model.pt, train_log.csv and validation.json to out_dir."""
    trainer = Trainer(
        TrainRecipe.from_config(recipe),
        Path(data_root),
        Path(out_dir),
        Path(checkpoint),
        val_sets=load_validation_sets(validation),
        device=resolve_device(device),
    )
    bar = progress(trainer.recipe.epochs * len(trainer._loader()), "training", unit="step")
    done = trainer.global_step
    bar.update(done)

    def tick(step: int) -> None:
        bar.update(1)

    trainer.run(progress=tick)
    bar.close()


def evaluate_verification(
    model: str | Path, bin_path: str | Path, out: str | Path, name: str, device: str = "auto"
) -> None:
    """Score a brownface ``model.pt`` on a ``.bin`` set; write the result JSON."""
    dev = resolve_device(device)
    fr = load_fr({"kind": "brownface", "checkpoint": str(model)}, device=dev)
    result = evaluate_bin(bin_path, fr, batch_size=128, device=dev)
    write_result_json(out, result, model=str(model), dataset=name)
    log.info("%s on %s: accuracy %.4f +- %.4f", model, name, result.accuracy, result.std)
