"""Render a dataset's variations into the training layout.

``images/<identity:06d>/<variation:03d>.png`` (variation 000 is the identity's reference) plus
``index.csv`` (path, identity, label): the ArcFace-aligned crops an FR network trains on, cut
from the generator's frame by the same fixed crop the sampler used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from brownface.imageio import encode, to_uint8
from brownface.models.align import warp_affine
from brownface.models.factory import build_generator
from brownface.runlog import progress
from brownface.sampling.embedder import world_crop_matrix
from brownface.store import VariationStore, atomic_dir
from brownface.train.data import write_index

log = logging.getLogger(__name__)


def render_variations(
    generator: torch.nn.Module,
    crop: torch.Tensor,  # [2, 3] pixel matrix, generator frame -> crop of image_size
    variations: Path,
    out_root: Path,
    image_size: int,
    batch: int = 256,
) -> int:
    """Write images/ and index.csv for every (identity, variation) of a variations store."""
    store = VariationStore.read(variations)
    n, v, w_dim = store.w.shape
    latents = torch.from_numpy(store.w.reshape(n * v, w_dim))
    device = crop.device
    rows = []
    with atomic_dir(out_root) as tmp:
        bar = progress(n * v, "render", unit="img")
        for start in range(0, n * v, batch):
            w = latents[start : start + batch].to(device)
            with torch.inference_mode():
                images = generator.synthesis(w)
                images = warp_affine(images, crop.expand(len(w), 2, 3), image_size)
            for offset, array in enumerate(to_uint8(images)):
                k = start + offset
                identity, variation = int(store.identity[k // v]), k % v
                rel = f"images/{identity:06d}/{variation:03d}.png"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(encode(array, "png"))
                rows.append((rel, identity, f"{variation:03d}"))
            bar.update(len(w))
        bar.close()
        write_index(tmp, rows)
    log.info("rendered %d identities x %d images at %dx%d", n, v, image_size, image_size)
    return n * v


def render_dataset(
    generator_cfg: dict, world: dict, variations: str, out_root: str, image_size: int
) -> None:
    """Stage entry: the configured generator and the world crop."""
    gen = build_generator({"generator": generator_cfg, "world": world})
    crop = world_crop_matrix(gen, image_size)
    render_variations(gen, crop, Path(variations), Path(out_root), image_size)
