"""The FR training recipe: every knob of a training run, with the paper's values as defaults.

Defaults follow the recipe the paper used for its synthetic datasets (AdaFace's ``train.sh``):
IResNet-50, AdaFace head (m 0.4, h 0.333, s 64, t_alpha 0.01), batch 256, SGD momentum 0.9,
weight decay 5e-4 on non-BN parameters and the head, lr 0.1 for 30 epochs, x0.1 at epochs
12/20/26, crop / low-resolution / photometric augmentation each with probability 0.2, and a
horizontal flip.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from brownface.config import SchemaParams, defaults

_D = defaults("recipe")


@dataclass(frozen=True)
class TrainRecipe(SchemaParams):
    """Every knob of a training run; defaults and limits are the schema's ``recipe``."""

    SCHEMA: ClassVar[str] = "recipe"
    CONFIG_KEY: ClassVar[str] = "training.recipe"

    arch: str = _D["arch"]  # iresnet18/34/50/100/200, or "iresnet" with explicit layers
    layers: tuple[int, ...] | None = _D["layers"]  # blocks per stage; None = the arch's
    widths: tuple[int, ...] = _D["widths"]  # channels per stage
    input_size: int = _D["input_size"]  # ArcFace-aligned crop size fed to the network
    embedding_size: int = _D["embedding_size"]
    dropout: float = _D["dropout"]
    head: str = _D["head"]  # adaface | arcface | cosface
    head_kwargs: dict = field(default_factory=lambda: dict(_D["head_kwargs"]))  # e.g. {"m": 0.4}
    batch_size: int = _D["batch_size"]  # images per step, over all GPUs
    lr: float = _D["lr"]
    momentum: float = _D["momentum"]
    weight_decay: float = _D["weight_decay"]  # on non-BN parameters and the head's centres
    epochs: int = _D["epochs"]
    milestones: tuple[int, ...] = _D["milestones"]  # epochs where lr is multiplied by gamma
    validate_every: int = _D["validate_every"]  # epochs between validations (and the last)
    gamma: float = _D["gamma"]
    p_crop: float = _D["p_crop"]
    p_lowres: float = _D["p_lowres"]
    p_photo: float = _D["p_photo"]
    p_flip: float = _D["p_flip"]
    grad_clip: float | None = _D["grad_clip"]  # max gradient norm; None = no clipping
    amp: bool = _D["amp"]  # mixed precision, on CUDA only
    seed: int = _D["seed"]
    checkpoint_every: int = _D["checkpoint_every"]  # also every N steps (0 = at epoch ends)
    log_every: int = _D["log_every"]  # steps between log rows
    workers: int = _D["workers"]  # DataLoader worker processes (0 = in the main process)
    cache: bool | None = _D["cache"]  # decode the dataset into memory; None = if < 2 GiB

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)
