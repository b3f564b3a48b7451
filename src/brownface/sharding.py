"""Splitting work into shards: contiguous, balanced index ranges.

Used by every sharded stage (variations by identity, projection by image); results never
depend on the shard count because every draw is seeded per item, not per shard.
"""

from __future__ import annotations

from brownface.errors import UserError


def shard_range(n: int, shards: int, k: int, align: int = 1) -> tuple[int, int]:
    """Items [start, stop) of shard k of ``shards``: contiguous, balanced, and starting on
    multiples of ``align`` (e.g. a batch or group size, so no shard computes extra items)."""
    if shards < 1 or not 0 <= k < shards:
        raise UserError(f"shard {k} of {shards}: need shards >= 1 and 0 <= shard < shards")
    if n < 0 or align < 1:
        raise ValueError(f"shard_range: need n >= 0 and align >= 1, got n={n}, align={align}")
    units = -(-n // align)
    return min(n, k * units // shards * align), min(n, (k + 1) * units // shards * align)
