"""How well the projection reconstructed each kind of photograph (pose, flash, expression).

A median over all images hides where inversion fails: profile cameras, dark flashes or one
expression can sit far below the rest while the SVMs still get fitted on them. The table has
one row per camera, flash and expression (and one for all images) with the image count, the
count flagged above ``max_loss``, and the final loss. When the loss is pixel MSE alone (no
VGG16 term) it also gives the PSNR, 10 log10(2^2 / MSE) for images in [-1, 1].
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from brownface.store import ProjectionStore

COLUMNS = (
    "factor",
    "value",
    "images",
    "flagged",
    "loss_median",
    "psnr_median",
    "psnr_p10",
)


def psnr(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2) from their MSE."""
    return 10 * np.log10(4.0 / np.maximum(np.asarray(mse, np.float64), 1e-12))


def pixel_mse(store: ProjectionStore) -> np.ndarray | None:
    """The stored loss as pixel MSE, or None when it includes the perceptual term."""
    params = store.provenance.get("projection_params") or {}
    if params.get("vgg16"):
        return None
    return store.loss.astype(np.float64) / float(params.get("pixel_weight", 1.0))


def projection_quality(store: ProjectionStore) -> pd.DataFrame:
    """One row per camera, flash and expression, and a first row for all images."""
    max_loss = float(store.attrs.get("max_loss", math.inf))
    mse = pixel_mse(store)
    frame = pd.DataFrame(
        {
            "camera": store.camera.astype(str),
            "flash": [f"{int(f):02d}" for f in store.flash],
            "expression": store.expression.astype(str),
            "loss": store.loss.astype(np.float64),
            "psnr": psnr(mse) if mse is not None else np.nan,
        }
    )

    def row(factor: str, value: str, part: pd.DataFrame) -> dict:
        return {
            "factor": factor,
            "value": value,
            "images": len(part),
            "flagged": int((part.loss > max_loss).sum()),
            "loss_median": float(part.loss.median()),
            "psnr_median": float(part.psnr.median()),
            "psnr_p10": float(part.psnr.quantile(0.1)),
        }

    rows = [row("all", "all", frame)]
    for factor in ("camera", "flash", "expression"):
        rows.extend(row(factor, str(v), part) for v, part in frame.groupby(factor, sort=True))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def quality_summary(table: pd.DataFrame) -> str:
    """One line: overall PSNR (or loss) and the worst camera, flash and expression."""
    use_psnr = bool(np.isfinite(table.psnr_median).all())
    key, unit = ("psnr_median", " dB") if use_psnr else ("loss_median", "")
    first = table.iloc[0]
    parts = [
        f"projection {'PSNR' if use_psnr else 'loss'} median {first[key]:.4g}{unit}"
        f" over {first.images} images ({first.flagged} flagged)"
    ]
    for factor in ("camera", "flash", "expression"):
        part = table[table.factor == factor]
        if len(part):
            worst = part.loc[part[key].idxmin() if use_psnr else part[key].idxmax()]
            parts.append(f"worst {factor} {worst.value}: {worst[key]:.4g}{unit}")
    return "; ".join(parts)
