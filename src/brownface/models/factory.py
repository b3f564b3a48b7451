"""Building the configured generator and choosing the torch device."""

from __future__ import annotations

import torch

from brownface.errors import UserError
from brownface.world.generator import WorldGenerator


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config device: {name!r} requested but CUDA is not available here")
    return torch.device(name)


def world_generator(world: dict) -> WorldGenerator:
    """The world generator from the validated ``world`` config section."""
    return WorldGenerator(
        seed=world["seed"],
        z_dim=world["z_dim"],
        w_dim=world["w_dim"],
        identity_dim=world["identity_dim"],
        resolution=world["resolution"],
    )


def build_generator(config: dict, device: torch.device | None = None) -> torch.nn.Module:
    """The generator named by ``config['generator']['kind']`` (validated config)."""
    kind = config["generator"]["kind"]
    if kind == "world":
        gen = world_generator(config["world"])
    else:  # the schema admits only known kinds
        raise UserError(f"config generator.kind: unknown generator {kind!r}")
    return gen.to(device or torch.device("cpu")).eval()
