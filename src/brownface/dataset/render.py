"""Render a dataset's variations into the dataset layout (``brownface.dataset.layout``).

``images/<identity:06d>/<variation:03d>.png`` (variation 000 is the identity's reference) plus
``index.csv``: the ArcFace-aligned crops an FR network trains on, cut from the generator's frame
by the generator's own crop (``fr_crop``), the one the samplers used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from brownface.dataset.layout import IndexWriter
from brownface.imageio import encode, to_uint8
from brownface.models.generator import GeneratorBase
from brownface.runlog import progress
from brownface.store import VariationStore, atomic_dir

log = logging.getLogger(__name__)


def render_variations(
    generator: GeneratorBase,  # synthesis and fr_crop
    variations: Path,  # variations.h5
    out_root: Path,  # the dataset root to write (replaced atomically)
    image_size: int,  # side of the aligned crops
    batch: int = 256,
) -> int:
    """Write images/ and index.csv for every (identity, variation) of a variations store."""
    store = VariationStore.read(variations)
    n, v, w_dim = store.w.shape
    latents = torch.from_numpy(store.w.reshape(n * v, w_dim))
    device = generator.w_avg.device
    with atomic_dir(out_root) as tmp:
        index = IndexWriter(tmp)
        bar = progress(n * v, "render", unit="img")
        for start in range(0, n * v, batch):
            w = latents[start : start + batch].to(device)
            with torch.inference_mode():
                images = generator.synthesis(w)
                images = generator.fr_crop(images, image_size)
            for offset, array in enumerate(to_uint8(images)):
                k = start + offset
                identity, variation = int(store.identity[k // v]), k % v
                rel = f"images/{identity:06d}/{variation:03d}.png"
                index.add(rel, encode(array, "png"), identity, f"{variation:03d}")
            bar.update(len(w))
        bar.close()
        index.write()
    log.info("rendered %d identities x %d images at %dx%d", n, v, image_size, image_size)
    return n * v
