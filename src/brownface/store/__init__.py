"""HDF5 stores of latents, embeddings, covariates and checkpoints.

Every file carries ``format`` = "brownface/<kind>", an integer ``version`` and a JSON
``provenance``; readers refuse other kinds, newer versions and corrupt files with one line.
Writes are atomic and byte-deterministic.
"""

from brownface.store.base import (
    FORMAT_PREFIX,
    KINDS,
    VERSION,
    StoreError,
    atomic_dir,
    atomic_path,
    open_store,
)
from brownface.store.checkpoint import (
    Checkpoint,
    checkpoint_path,
    clear_accepted,
    load_checkpoint,
    load_loop_state,
    load_matching_checkpoint,
    restore_rng,
    rng_state,
    run_key,
    save_checkpoint,
)
from brownface.store.kinds import (
    STORES,
    CovariateStore,
    EmbeddingStore,
    IdentityStore,
    ProjectionStore,
    StoreBase,
    VariationStore,
    read_variations,
    variation_index,
)
from brownface.store.merge import merge_shards, shard_provenance
from brownface.store.summary import digests, read_any, summarize

__all__ = [
    "FORMAT_PREFIX",
    "KINDS",
    "STORES",
    "VERSION",
    "Checkpoint",
    "atomic_dir",
    "checkpoint_path",
    "clear_accepted",
    "load_loop_state",
    "load_matching_checkpoint",
    "CovariateStore",
    "digests",
    "EmbeddingStore",
    "IdentityStore",
    "ProjectionStore",
    "StoreBase",
    "StoreError",
    "VariationStore",
    "atomic_path",
    "load_checkpoint",
    "merge_shards",
    "open_store",
    "read_any",
    "read_variations",
    "restore_rng",
    "rng_state",
    "run_key",
    "save_checkpoint",
    "shard_provenance",
    "summarize",
    "variation_index",
]
