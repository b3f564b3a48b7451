"""A dataset card: what a rendered synthetic dataset is, how it was made, and how it looks in
angles, as one deterministic JSON file (``card.json``).

A card answers "which data trained this model?" without the stores: the counts, the recipes
and seed, the generator and reference FR network (with the sha256 of their weights), the
stores' provenance, the images' fingerprint, and the two angle distributions of
:func:`brownface.dataset.angles.dataset_angles` summarised. Keys are sorted, floats rounded and
nothing depends on the clock, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from brownface.dataset.angles import dataset_angles
from brownface.dataset.layout import DatasetIndex, dataset_fingerprint
from brownface.store import IdentityStore, VariationStore, atomic_path

DECIMALS = 4  # of every angle statistic (degrees): far below any effect, above float noise
PERCENTILES = (5, 50, 95)


def summarise(values: np.ndarray, threshold: float | None = None) -> dict[str, Any] | None:
    """count, mean, std, min, max and percentiles of the finite values (degrees), plus the
    fraction below ``threshold`` when given; None when there are none (one identity has no
    nearest other, one image per identity no variation)."""
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return None
    stats = {
        "count": int(finite.size),
        "mean": finite.mean(),
        "std": finite.std(),
        "min": finite.min(),
        "max": finite.max(),
        **{f"p{q}": p for q, p in zip(PERCENTILES, np.percentile(finite, PERCENTILES))},
    }
    if threshold is not None:
        stats["frac_below_ict"] = float((finite < threshold).mean())
    return {k: v if isinstance(v, int) else round(float(v), DECIMALS) for k, v in stats.items()}


def angle_summary(store: VariationStore, ict_deg: float | None) -> dict[str, Any]:
    """The inter-class (nearest other reference, per identity) and intra-class (variation to
    its reference) angle distributions, in degrees, against the identities' ICT if any."""
    angles = dataset_angles(store)
    return {
        "unit": "degrees",
        "ict": None if ict_deg is None else round(float(ict_deg), DECIMALS),
        "inter_class_nearest": summarise(angles.inter_nearest, ict_deg),
        "intra_class_to_reference": summarise(angles.intra_to_reference, ict_deg),
    }


def dataset_card(
    *,
    dataset: str,  # the dataset's name in the config
    recipes: dict[str, dict[str, Any]],  # identities / variations: {name, recipe}
    seed: int,  # the config seed
    generator: dict[str, Any],  # the generator spec's provenance (sha256 of its weights)
    reference_fr: dict[str, Any],  # the reference FR spec's provenance
    identities: IdentityStore,
    variations: VariationStore,
    images: DatasetIndex,  # the rendered dataset's index
    render: dict[str, Any],  # image_size, format (and jpeg_quality)
    ict_deg: float | None,  # the identities recipe's inter-class threshold, degrees
) -> dict[str, Any]:
    """The card as plain JSON values."""
    n, v = variations.w.shape[:2]
    return {
        "dataset": dataset,
        "counts": {"identities": int(n), "images_per_identity": int(v), "images": int(n * v)},
        "recipes": recipes,
        "seed": int(seed),
        "generator": generator,
        "reference_fr": reference_fr,
        "stores": {"identities": identities.provenance, "variations": variations.provenance},
        "angles": angle_summary(variations, ict_deg),
        "render": render,
        "images": {"count": len(images), "fingerprint": dataset_fingerprint(images)},
    }


def _plain(obj: Any) -> Any:
    """numpy values in provenance (arrays, scalars) as JSON values."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} to a dataset card")


def write_card(card: dict[str, Any], out: str | Path) -> Path:
    """Sorted keys, two-space indent, no NaN or infinity, written atomically."""
    text = json.dumps(card, sort_keys=True, indent=2, allow_nan=False, default=_plain)
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(out)
