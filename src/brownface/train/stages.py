"""Stage entry point of the training rules: train an FR model on a dataset (resuming)."""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.evaluate.binfile import read_bin
from brownface.models.device import resolve_device
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
    recipe: TrainRecipe,
    *,
    name: str,  # the model's name (its dataset's), recorded in model.pt
    data_root: str | Path,  # a dataset: images/ + index.csv
    out_dir: str | Path,  # model.pt, train_log.csv, validation.json
    checkpoint: str | Path,  # resume state (kept after the run)
    validation: dict[str, str],  # .bin sets checked after every epoch, by name
    device: str = "auto",
) -> None:
    """Train (or resume) and write model.pt, train_log.csv and validation.json to out_dir."""
    trainer = Trainer(
        recipe,
        Path(data_root),
        Path(out_dir),
        Path(checkpoint),
        val_sets=load_validation_sets(validation),
        device=resolve_device(device),
        name=name,
    )
    bar = None

    def tick(step: int, total: int) -> None:
        nonlocal bar
        if bar is None:  # the first call comes after resuming: count the steps already done
            bar = progress(total, "training", unit="step")
            bar.update(step)
        else:
            bar.update(1)

    trainer.run(progress=tick)
    if bar is not None:
        bar.close()
