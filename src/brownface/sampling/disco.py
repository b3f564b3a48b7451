"""DisCo: Dispersion started from random combinations of covariate edits.

The start of variation a adds sum_d u_ad s_d E_d n_d to the Dispersion start, over seven unit
directions n_d of covariates.h5 (pose left/right, illumination left/right and five
neutral-vs-expression directions), with u_ad ~ U(-1/2, 1/2), E_d = max(-neg_mean_d, pos_mean_d)
the typical signed distance of the fitted latents from the hyperplane, and s_d the config's
scaling of the direction's kind. Each weight thus reaches at most half the typical edit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from brownface.errors import UserError
from brownface.sampling.dispersion import VariationParams
from brownface.store import CovariateStore

# direction name -> kind, whose scaling (scale_<kind>) multiplies it; the order of the draws
DIRECTION_KINDS: dict[str, str] = {
    "pose": "pose",
    "illumination": "illumination",
    "smile": "expression",
    "scream": "expression",
    "disgust": "expression",
    "squint": "expression",
    "surprise": "expression",
}


def disco_directions(path: Path | str, params: VariationParams, w_dim: int) -> torch.Tensor:
    """The scaled directions s_d E_d n_d [7, w_dim] (rows in DIRECTION_KINDS order)."""
    store = CovariateStore.read(path)
    names = [str(n) for n in store.name]
    missing = [n for n in DIRECTION_KINDS if n not in names]
    if missing:
        raise UserError(
            f"{path}: DisCo needs covariate directions {', '.join(DIRECTION_KINDS)}; "
            f"missing {', '.join(missing)}"
        )
    if store.direction.shape[1] != w_dim:
        raise UserError(
            f"{path}: directions have w_dim {store.direction.shape[1]}, but the generator's "
            f"latents have {w_dim}"
        )
    rows = []
    for name, kind in DIRECTION_KINDS.items():
        d = names.index(name)
        extent = max(-float(store.neg_mean[d]), float(store.pos_mean[d]))
        if not np.isfinite(extent):
            raise UserError(f"{path}: direction {name!r} has no finite pos_mean / neg_mean")
        scale = getattr(params, f"scale_{kind}")
        rows.append(scale * extent * store.direction[d].astype(np.float32))
    return torch.from_numpy(np.stack(rows).astype(np.float32))
