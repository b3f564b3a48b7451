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

from brownface.config import from_section


@dataclass(frozen=True)
class TrainRecipe:
    arch: str = "iresnet50"  # iresnet18/34/50/100/200, or "iresnet" with explicit layers
    layers: tuple[int, ...] | None = None  # blocks per stage; None = the arch's
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels per stage
    input_size: int = 112  # ArcFace-aligned crop size fed to the network
    embedding_size: int = 512
    dropout: float = 0.0
    head: str = "adaface"  # adaface | arcface | cosface
    head_kwargs: dict = field(default_factory=dict)  # e.g. {"m": 0.4, "h": 0.333, "s": 64}
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on non-BN parameters and the head's class centres
    epochs: int = 30
    milestones: tuple[int, ...] = (12, 20, 26)  # epochs where lr is multiplied by gamma
    gamma: float = 0.1
    p_crop: float = 0.2
    p_lowres: float = 0.2
    p_photo: float = 0.2
    p_flip: float = 0.5
    grad_clip: float | None = None  # max gradient norm; None = no clipping
    amp: bool = True  # mixed precision, on CUDA only
    seed: int = 0
    checkpoint_every: int = 0  # also checkpoint every N steps (0 = at epoch ends only)
    log_every: int = 50  # steps between log rows
    workers: int = 2  # DataLoader worker processes (0 = in the main process)
    cache: bool | None = None  # decode the dataset into memory; None = when it fits in 2 GiB

    @classmethod
    def from_config(cls, section: dict) -> TrainRecipe:
        """Build from a (validated) config section; lists become tuples, unknown keys refused."""
        return from_section(cls, section, "training recipe")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)
