"""Seeds derived from (config seed, stage, identity).

Every random draw in brownface comes from a generator seeded by a stable hash of the config
seed, the stage name and the item (identity, image, shard-independent index). Results therefore
do not depend on how many shards or jobs did the work, nor on the order they ran in.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, stage: str, *keys: int | str) -> int:
    """A 63-bit seed from a stable hash (BLAKE2b) of the seed, the stage and the keys."""
    text = "/".join([str(int(seed)), stage, *(str(k) for k in keys)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def torch_generator(seed: int, stage: str, *keys: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` for (seed, stage, keys); draw on CPU, then move to a device."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(seed, stage, *keys))
    return gen


def numpy_generator(seed: int, stage: str, *keys: int | str) -> np.random.Generator:
    """A NumPy ``Generator`` (PCG64) for (seed, stage, keys)."""
    return np.random.default_rng(derive_seed(seed, stage, *keys))


def normal_rows(
    seed: int, stage: str, ids: torch.Tensor | list[int], dim: int, dtype=torch.float32
) -> torch.Tensor:
    """One standard-normal row of length ``dim`` per id, each from its own seeded generator.

    Row i depends only on (seed, stage, ids[i]), which is what makes sharding invariant.
    """
    rows = [
        torch.randn(dim, generator=torch_generator(seed, stage, int(i)), dtype=dtype) for i in ids
    ]
    return torch.stack(rows) if rows else torch.empty(0, dim, dtype=dtype)
