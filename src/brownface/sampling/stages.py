"""Stage entry points of the sampling rules: build e(w) from the config, run, write stores."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from brownface import __version__
from brownface.models.factory import build_generator, resolve_device
from brownface.models.fr import fr_provenance, load_fr, reference_fr_spec
from brownface.sampling.embedder import LatentEmbedder, world_crop_matrix
from brownface.sampling.identities import IdentityParams, sample_identities
from brownface.sampling.variations import VariationParams, sample_variations
from brownface.sharding import shard_range
from brownface.store import IdentityStore, merge_shards

log = logging.getLogger(__name__)


def build_embedder(
    generator: dict, world: dict, reference_fr: dict, device: str
) -> tuple[LatentEmbedder, dict]:
    """e(w) for the configured generator and reference FR, and its provenance."""
    dev = resolve_device(device)
    gen = build_generator({"generator": generator, "world": world}, dev)
    fr = load_fr(reference_fr_spec(reference_fr), device=dev)
    if generator["kind"] == "world":
        crop = world_crop_matrix(gen, fr.spec.input_size)
    else:  # the schema admits only the world today
        raise NotImplementedError(generator["kind"])
    embedder = LatentEmbedder(gen, fr, crop.to(dev)).to(dev)
    provenance = {
        "generator": {**gen.spec(), "truncation_psi": generator["truncation_psi"]},
        "reference_fr": fr_provenance(fr.spec),
        "package_version": __version__,
    }
    return embedder, provenance


def run_identities(
    recipe: dict,
    name: str,
    seed: int,
    generator: dict,
    world: dict,
    reference_fr: dict,
    device: str,
    out: str,
    stats: str,
    checkpoint: str,
) -> None:
    """The identities of one recipe: identities.h5 and its statistics."""
    embedder, provenance = build_embedder(generator, world, reference_fr, device)
    params = IdentityParams.from_config({k: v for k, v in recipe.items() if k != "avoid"})
    avoid = None
    if recipe.get("avoid"):
        avoid = torch.from_numpy(IdentityStore.read(recipe["avoid"]).embedding)
    provenance.update(recipe={"name": name, **recipe}, seed=seed, stage="identities")
    sample_identities(
        embedder,
        params,
        seed,
        out=Path(out),
        stats_out=Path(stats),
        checkpoint=Path(checkpoint),
        avoid=avoid,
        provenance=provenance,
    )


def run_variations(
    recipe: dict,
    dataset: str,
    seed: int,
    shard: int,
    shards: int,
    identities: str,
    covariates: str | None,
    generator: dict,
    world: dict,
    reference_fr: dict,
    device: str,
    out: str,
    stats: str,
    checkpoint: str,
) -> None:
    """One shard of a dataset's variations."""
    embedder, provenance = build_embedder(generator, world, reference_fr, device)
    params = VariationParams.from_config(recipe)
    n = len(IdentityStore.read(identities).identity)
    start, stop = shard_range(n, shards, shard, align=params.group_size)
    log.info("dataset %s shard %d/%d: identities %d..%d", dataset, shard, shards, start, stop - 1)
    provenance.update(recipe=recipe, dataset=dataset, stage="variations", shard=shard)
    sample_variations(
        embedder,
        params,
        Path(identities),
        seed,
        out=Path(out),
        start=start,
        stop=stop,
        covariates_path=Path(covariates) if covariates else None,
        stats_out=Path(stats),
        checkpoint=Path(checkpoint),
        provenance=provenance,
    )


def merge_variations(shards: list[str], identities: str, out: str) -> None:
    """Merge a dataset's shards; every identity of identities.h5 exactly once."""
    n = len(IdentityStore.read(identities).identity)
    merge_shards([Path(s) for s in shards], Path(out), expected=n)
    log.info("merged %d shards of %d identities into %s", len(shards), n, out)
