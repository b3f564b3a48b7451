"""Stage entry points of the sampling rules: build e(w) from the specs, run, write the stores.

One function per rule, named after it: ``sample_identities``, ``sample_variations`` (one shard)
and ``merge_variations``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from brownface.distributed import init_from_env, rank_device
from brownface.errors import UserError
from brownface.models.checkpoints import sha256_file
from brownface.models.device import resolve_device
from brownface.models.fr import FRSpec, fr_provenance, load_fr
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.sampling.disco import disco_directions
from brownface.sampling.dispersion import VariationParams, disperse
from brownface.sampling.embedder import LatentEmbedder, embed_all
from brownface.sampling.langevin import IdentityParams, langevin, sample_random
from brownface.sampling.reject import sample_reject
from brownface.sharding import shard_range
from brownface.store import (
    EmbeddingStore,
    IdentityStore,
    VariationStore,
    atomic_path,
    merge_shards,
    open_store,
    shard_provenance,
)

log = logging.getLogger(__name__)


def build_embedder(
    generator: GeneratorSpec, reference_fr: FRSpec, device: str
) -> tuple[LatentEmbedder, dict]:
    """e(w) for a generator and an FR network, on ``device``, and its provenance."""
    dev = resolve_device(device)
    fr = load_fr(reference_fr, device=dev)
    embedder = LatentEmbedder(load_generator(generator, dev), fr).to(dev).eval()
    provenance = {"generator": generator.provenance(), "reference_fr": fr_provenance(fr.spec)}
    return embedder, provenance


def execution_free(recipe: dict, params) -> dict:
    """A recipe without the fields that decide how a run is computed, not what (its ranks,
    activation checkpointing): what a checkpoint's fingerprint records, so that changing them
    resumes instead of starting over."""
    return {k: v for k, v in recipe.items() if k not in params.EXECUTION_ONLY}


def _write_stats(table, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def avoid_set(path: str | Path, images: bool = False) -> tuple[np.ndarray, dict]:
    """The fixed repellers of an identities recipe and what its stores record about them:
    an identities store's embeddings, or an embeddings store's identities (each label's
    normalised mean) or, with ``images``, every image of it."""
    kind, _ = open_store(path)
    if kind == "identities":
        embeddings = IdentityStore.read(path).embedding
    elif kind == "embeddings":
        store = EmbeddingStore.read(path)
        embeddings = store.embedding if images else store.identity_means()[1]
    else:
        raise UserError(f"{path}: avoid: expected an identities or embeddings store, got {kind}")
    record = {"path": str(path), "kind": kind, "identities": int(embeddings.shape[0])}
    if kind == "embeddings" and images:
        record["images"] = True  # "identities" then counts the images that repel
    return embeddings, {**record, "sha256": sha256_file(path)}


def sample_identities(
    generator: GeneratorSpec,  # reads truncation_psi (every draw from z)
    reference_fr: FRSpec,
    params: IdentityParams,
    *,
    name: str,  # the recipe's name (config identities.<name>)
    seed: int,
    device: str,
    out: str | Path,  # identities.h5
    stats: str | Path,  # the per-iteration statistics CSV
    checkpoint: str | Path,  # Langevin's resume file (kept after the run)
    stop_after: int | None = None,  # Langevin: stop after this many iterations, checkpointed
) -> None:
    """The identities of one recipe: identities.h5 and its statistics.

    Under torchrun (``params.gpus`` ranks, see :func:`run_identities`) every rank calls this:
    each computes on its own GPU and rank 0 writes the outputs. ``stop_after`` stops Langevin
    as a preempted job would, with the checkpoint written and no outputs (tests use it).
    """
    if generator.truncation_psi is None:
        raise UserError("generator spec: the identities stage needs truncation_psi")
    rank, _, local_rank = init_from_env()
    dev = rank_device(resolve_device(device), local_rank)
    embedder, provenance = build_embedder(generator, reference_fr, str(dev))
    provenance.update(recipe={"name": name, **params.to_dict()}, seed=int(seed), stage="identities")
    avoid = None
    if params.avoid is not None:
        embeddings, provenance["avoid"] = avoid_set(params.avoid, params.avoid_images)
        avoid = torch.from_numpy(embeddings).to(embedder.w_avg)
        e_dim = embed_all(embedder, embedder.w_avg[None], 1).shape[1]
        if avoid.ndim != 2 or avoid.shape[1] != e_dim:
            raise UserError(
                f"{params.avoid}: avoid embeddings must be [M, {e_dim}] (the reference FR's), "
                f"got {list(avoid.shape)}"
            )
    log.info("identities %s (%s): n = %d, seed %d", name, params.algorithm, params.n, seed)
    psi = generator.truncation_psi
    if params.algorithm == "random":
        result = sample_random(embedder, params, seed, psi)
    elif params.algorithm == "reject":
        result = sample_reject(embedder, params, seed, psi, avoid)
    else:
        stop = None if stop_after is None else (lambda done: done >= stop_after)
        fingerprint = {**provenance, "recipe": execution_free(provenance["recipe"], params)}
        result = langevin(embedder, params, seed, psi, checkpoint, avoid, fingerprint, stop)
    if result.embeddings is None:
        log.info("identities %s: stopped after %d iterations (checkpointed)", name, stop_after)
        return
    if rank != 0:
        return
    IdentityStore(
        identity=np.arange(params.n, dtype=np.int64),
        w=result.w.detach().cpu().float().numpy(),
        embedding=result.embeddings.detach().cpu().float().numpy(),
        provenance={**provenance, "identity_params": params.to_dict()},
    ).write(out)
    _write_stats(result.stats, stats)


def sample_variations(
    generator: GeneratorSpec,  # reads noise_mode (truncation_psi unused)
    reference_fr: FRSpec,
    params: VariationParams,
    *,
    dataset: str,
    seed: int,
    shard: int,  # this job's shard, 0 <= shard < shards
    shards: int,
    identities: str | Path,  # identities.h5 of the dataset
    covariates: str | Path | None,  # covariates.h5 (DisCo only)
    device: str,
    out: str | Path,  # this shard's variations store
    stats: str | Path,  # its statistics CSV
    checkpoint: str | Path,  # its resume file (kept after the run)
) -> None:
    """One shard of a dataset's variations: identities [start, stop) of identities.h5.

    Variation 0 of each identity is the reference itself (its stored w and embedding), 1..A
    the sampled ones, with embeddings of their final latents.
    """
    embedder, provenance = build_embedder(generator, reference_fr, device)
    refs = IdentityStore.read(identities)
    n, w_dim = refs.w.shape
    if w_dim != embedder.w_dim:
        raise UserError(f"{identities}: latents have w_dim {w_dim}, the generator {embedder.w_dim}")
    e_dim = embed_all(embedder, embedder.w_avg[None], 1).shape[1]
    if n and e_dim != refs.embedding.shape[1]:
        raise UserError(
            f"{identities}: embeddings have {refs.embedding.shape[1]} dimensions, "
            f"the FR model's {e_dim}; were the identities made with another FR model?"
        )
    directions = None
    if params.algorithm == "disco":
        if covariates is None:
            raise UserError("variations: algorithm disco needs a covariates.h5 (none given)")
        directions = disco_directions(covariates, params, w_dim)
    start, stop = shard_range(n, shards, shard, align=params.group_size)
    log.info("dataset %s shard %d/%d: identities %d..%d", dataset, shard, shards, start, stop - 1)
    provenance.update(recipe=params.to_dict(), dataset=dataset, stage="variations", seed=int(seed))
    arrays = {"identity": refs.identity, "w": refs.w, "embedding": refs.embedding}
    fingerprint = {**provenance, "recipe": execution_free(provenance["recipe"], params)}
    result = disperse(
        embedder, params, arrays, start, stop, seed, directions, checkpoint, fingerprint
    )
    assert result is not None  # only an abort_fn stops a run early
    rows = slice(start, stop)
    VariationStore(
        identity=refs.identity[rows],
        w=np.concatenate([refs.w[rows, None], result.w.cpu().numpy()], axis=1),
        embedding=np.concatenate([refs.embedding[rows, None], result.embeddings.cpu().numpy()], 1),
        provenance={
            **provenance,
            "variation_params": params.to_dict(),
            "shard": shard_provenance(shard, shards, start, stop),
        },
    ).write(out)
    _write_stats(result.stats, stats)


def merge_variations(shards: list[str], identities: str, out: str) -> None:
    """Merge a dataset's shards; every identity of identities.h5 exactly once."""
    n = len(IdentityStore.read(identities).identity)
    merge_shards([Path(s) for s in shards], Path(out), expected=n)
    log.info("merged %d shards of %d identities into %s", len(shards), n, out)
