"""Editing latents along covariate directions: w + amount * E_d * n_d.

The unit of ``amount`` is E_d = max(-neg_mean_d, pos_mean_d), the larger of the two typical
signed distances of the fitted latents from the SVM hyperplane (``svm.py``; DisCo uses the
same unit). ``amount = 1`` therefore moves a latent by about the distance separating a typical
training latent from the boundary; positive amounts move towards label 1 (right-hand pose or
light, the expression present), negative amounts away from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from brownface.errors import UserError
from brownface.imageio import save_image, to_uint8
from brownface.store import CovariateStore, IdentityStore, ProjectionStore, open_store


def direction(covariates: CovariateStore, name: str) -> tuple[np.ndarray, float]:
    """(unit normal n_d [w_dim], unit E_d) of the direction called ``name``."""
    names = [str(n) for n in covariates.name]
    if name not in names:
        raise UserError(f"unknown covariate direction {name!r}; the store has {', '.join(names)}")
    d = names.index(name)
    unit = max(-float(covariates.neg_mean[d]), float(covariates.pos_mean[d]))
    if not np.isfinite(unit):
        raise UserError(f"covariate direction {name!r} has no finite pos_mean / neg_mean")
    return covariates.direction[d].astype(np.float32), unit


def edit_latent(
    w: torch.Tensor,  # [..., w_dim]
    covariates: CovariateStore | str | Path,
    name: str,  # pose, illumination, smile, surprise, squint, disgust, scream
    amount: float | torch.Tensor,  # in units of E_d; a tensor broadcasts against w[..., 0]
) -> torch.Tensor:
    """w + amount * E_d * n_d (see the module docstring)."""
    if not isinstance(covariates, CovariateStore):
        covariates = CovariateStore.read(covariates)
    n, unit = direction(covariates, name)
    if n.shape[0] != w.shape[-1]:
        raise UserError(f"covariate directions have w_dim {n.shape[0]}, the latents {w.shape[-1]}")
    step = torch.as_tensor(amount, dtype=w.dtype, device=w.device)
    return w + (step * unit)[..., None] * torch.from_numpy(n).to(w)


def read_latent(path: str | Path, index: int) -> torch.Tensor:
    """Latent ``index`` [1, w_dim] of an identities or projections store."""
    kind, _ = open_store(path)
    stores = {"identities": IdentityStore, "projections": ProjectionStore}
    if kind not in stores:
        raise UserError(f"{path}: a {kind} store; expected identities or projections")
    w = stores[kind].read(path).w
    if not 0 <= index < len(w):
        raise UserError(f"{path}: index {index} is outside 0..{len(w) - 1}")
    return torch.from_numpy(w[index : index + 1])


@torch.no_grad()
def edit_image(
    generator: nn.Module,  # synthesis(w [B, w_dim]) -> [B, 3, R, R] in [-1, 1]
    latents: str | Path,  # identities.h5 or projections.h5
    index: int,  # row of the latent to edit
    covariates: str | Path,  # covariates.h5
    name: str,  # direction name
    amount: float,  # in units of E_d
    out: str | Path,  # image file (.png or .jpg)
) -> Path:
    """Render latent ``index`` edited along ``name`` by ``amount`` and save it to ``out``."""
    device = generator.w_avg.device
    w = edit_latent(read_latent(latents, index).to(device), covariates, name, amount)
    save_image(out, to_uint8(generator.synthesis(w))[0])
    return Path(out)
