"""Render a dataset's variations into the dataset layout (``brownface.dataset.layout``).

``images/<identity:06d>/<variation:03d>.<png|jpg>`` (variation 000 is the identity's reference)
plus ``index.csv``: the ArcFace-aligned crops an FR network trains on, cut from the generator's
frame by the generator's own crop (``fr_crop``), the one the samplers used.

Rendering is split by identity range into shards (:func:`render_variations` renders one, with
a ``render.json`` saying which), and :func:`merge_rendered` links the shards' images into one
dataset root. The merged root is the same bytes for any number of shards: every image is
synthesised in a batch of the same identities whatever the split (shards start on batch
boundaries), and the index is sorted by path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from brownface.config import SchemaParams, defaults
from brownface.dataset.layout import IndexWriter, read_index
from brownface.errors import UserError
from brownface.imageio import encode, to_uint8
from brownface.models.generator import GeneratorBase
from brownface.runlog import progress
from brownface.sharding import shard_range
from brownface.store import atomic_dir, read_variations, shard_provenance, variation_index

log = logging.getLogger(__name__)

_D = defaults("render")
EXTENSIONS = {"png": "png", "jpeg": "jpg"}  # file extension of each format
SHARD_FILE = "render.json"  # in a shard's root: its identity range and settings
BATCH = 256  # images per synthesis (rounded down to whole identities)


@dataclass(frozen=True)
class RenderSettings(SchemaParams):
    """How the images are written; defaults and limits are the schema's ``render``."""

    SCHEMA: ClassVar[str] = "render"
    CONFIG_KEY: ClassVar[str] = "render"

    format: str = _D["format"]  # png | jpeg
    jpeg_quality: int = _D["jpeg_quality"]  # 1..100; unread for png

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]

    def encode(self, image: np.ndarray) -> bytes:
        return encode(image, self.format, self.jpeg_quality)

    def describe(self) -> dict:
        """The settings that shape the files (no quality for PNG), for cards and shards."""
        data = {"format": self.format}
        if self.format == "jpeg":
            data["jpeg_quality"] = self.jpeg_quality
        return data


def identities_per_batch(v: int, batch: int = BATCH) -> int:
    """Whole identities per synthesis batch: also the alignment of shard boundaries, so a
    batch holds the same identities however the store is split."""
    return max(1, batch // max(v, 1))


def render_variations(
    generator: GeneratorBase,  # synthesis and fr_crop
    variations: Path,  # variations.h5
    out_root: Path,  # the dataset (or shard) root to write, replaced atomically
    image_size: int,  # side of the aligned crops
    settings: RenderSettings | None = None,  # None = the schema's defaults (PNG)
    *,
    shard: int = 0,  # this job's shard, 0 <= shard < shards
    shards: int = 1,
    batch: int = BATCH,  # images per synthesis, rounded down to whole identities
) -> int:
    """Write images/, index.csv and render.json for the identities of one shard of a store."""
    settings = settings or RenderSettings()
    ids, v = variation_index(variations)
    if np.any(np.diff(ids) <= 0):
        raise UserError(f"{variations}: identities are not in increasing order; cannot shard")
    group = identities_per_batch(v, batch)
    start, stop = shard_range(len(ids), shards, shard, align=group)
    # Identities of rows [start, stop), as the identity range read_variations selects.
    first, last = (int(ids[start]), int(ids[stop - 1]) + 1) if stop > start else (0, 0)
    store = read_variations(variations, first, last)
    device = generator.w_avg.device
    with atomic_dir(out_root) as tmp:
        index = IndexWriter(tmp)
        bar = progress(len(store) * v, "render", unit="img")
        for g0 in range(0, len(store), group):
            w = torch.from_numpy(store.w[g0 : g0 + group].reshape(-1, store.w.shape[-1]))
            with torch.inference_mode():
                images = generator.synthesis(w.to(device))
                images = generator.fr_crop(images, image_size)
            for k, array in enumerate(to_uint8(images)):
                identity, variation = int(store.identity[g0 + k // v]), k % v
                rel = f"images/{identity:06d}/{variation:03d}.{settings.extension}"
                index.add(rel, settings.encode(array), identity, f"{variation:03d}")
            bar.update(len(w))
        bar.close()
        index.write()
        meta = {
            "shard": shard_provenance(shard, shards, start, stop),
            "variations": v,
            "image_size": int(image_size),
            "render": settings.describe(),
        }
        (tmp / SHARD_FILE).write_text(json.dumps(meta, sort_keys=True) + "\n")
    log.info(
        "shard %d/%d: rendered %d identities x %d images at %dx%d (%s)",
        shard, shards, len(store), v, image_size, image_size, settings.format,
    )  # fmt: skip
    return len(store) * v


def _read_shard(root: Path) -> dict:
    """A shard's render.json (its split, V, image size and settings)."""
    path = root / SHARD_FILE
    try:
        meta = json.loads(path.read_text())
        shard = meta["shard"]
        ok = all(isinstance(shard[k], int) for k in ("index", "count", "start", "stop"))
        ok &= all(k in meta for k in ("variations", "image_size", "render"))
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise UserError(f"{path}: not a render shard's {SHARD_FILE}")
    return meta


def _check_shards(roots: list[Path], metas: list[dict], out: Path) -> None:
    """One split of one render: the same settings, every shard once, rows tiling from 0."""
    for root, meta in zip(roots, metas, strict=True):
        for key in ("variations", "image_size", "render"):
            if meta[key] != metas[0][key]:
                raise UserError(
                    f"{out}: cannot merge: {root} has {key} {meta[key]}, {roots[0]} has "
                    f"{metas[0][key]}; shards must come from one render"
                )
    splits = sorted((m["shard"]["index"], m["shard"]["count"]) for m in metas)
    if splits != [(k, len(metas)) for k in range(len(metas))]:
        raise UserError(
            f"{out}: cannot merge: expected shards 0..{len(metas) - 1} of {len(metas)}, got "
            + ", ".join(f"{k} of {n}" for k, n in splits)
        )
    position = 0
    for root, meta in sorted(zip(roots, metas, strict=True), key=lambda p: p[1]["shard"]["index"]):
        start = meta["shard"]["start"]
        if start != position:
            raise UserError(f"{out}: cannot merge: {root} starts at row {start}, not {position}")
        position = meta["shard"]["stop"]


def merge_rendered(shard_roots: Sequence[str | Path], out_root: str | Path) -> int:
    """One dataset root from render shards: their images hard-linked (or copied) and one
    index.csv, byte for byte what a single shard would have written."""
    roots, out = [Path(r) for r in shard_roots], Path(out_root)
    if not roots:
        raise UserError(f"{out}: cannot merge: no render shards given")
    metas = [_read_shard(root) for root in roots]
    _check_shards(roots, metas, out)
    seen: dict[str, Path] = {}
    with atomic_dir(out) as tmp:
        writer = IndexWriter(tmp)
        for root, meta in zip(roots, metas, strict=True):
            index = read_index(root, allow_empty=True)
            rows = meta["shard"]["stop"] - meta["shard"]["start"]
            if len(index) != rows * meta["variations"] or index.sha256 is None:
                raise UserError(
                    f"{root}/index.csv: expected {rows} identities x {meta['variations']} "
                    f"images with digests, found {len(index)} rows"
                )
            for i, rel in enumerate(index.paths):
                if rel in seen:
                    raise UserError(f"{out}: cannot merge: {seen[rel]} and {root} both hold {rel}")
                seen[rel] = root
                identity, label = int(index.identities[i]), index.labels[i]
                writer.link(rel, root / rel, identity, label, index.sha256[i])
        writer.write()
    log.info("merged %d render shards: %d images in %s", len(roots), len(seen), out)
    return len(seen)
