"""Choosing the torch device: ``auto`` takes CUDA when present, every path also runs on CPU."""

from __future__ import annotations

import torch

from brownface.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"config device: {name!r} requested but CUDA is not available here")
    return torch.device(name)
