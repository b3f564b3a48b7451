"""Training images for the world's reference FR network, in the rendered dataset layout.

``images/<identity:06d>/<k:03d>.png`` plus ``index.csv`` (``brownface.dataset.layout``): ArcFace-aligned
crops of ``identities`` world people under random ("wild") pose, light and expression. The
identities come from their own seeded stream, disjoint from the benchmark sets' people.
"""

from __future__ import annotations

from pathlib import Path

import torch

from brownface.dataset.layout import IndexWriter
from brownface.imageio import encode, to_uint8
from brownface.runlog import progress
from brownface.seeding import torch_generator
from brownface.store import atomic_dir
from brownface.world.capture import arcface_framing, sample_nuisance
from brownface.world.renderer import FaceParams, FaceRenderer


def build_fr_train_set(
    renderer: FaceRenderer,
    seed: int,
    out_root: Path,
    identities: int = 1000,
    images_per_identity: int = 24,
    image_size: int = 64,
    batch: int = 256,
) -> int:
    """Render the set under ``out_root``; returns the number of images."""
    gen = torch_generator(seed, "world/reference_fr")
    ident = torch.randn(identities, renderer.identity_dim, generator=gen)
    person = torch.arange(identities).repeat_interleave(images_per_identity)
    n = len(person)
    params = FaceParams.neutral(ident[person], **sample_nuisance(gen, n, "wild"))
    params = arcface_framing(renderer, params, image_size)
    with atomic_dir(out_root) as tmp:
        index = IndexWriter(tmp)
        bar = progress(n, "reference FR training set", unit="img")
        for start in range(0, n, batch):
            with torch.inference_mode():
                images, _ = renderer(params[start : start + batch], resolution=image_size)
            for offset, array in enumerate(to_uint8(images)):
                i = start + offset
                pid, k = int(person[i]), i % images_per_identity
                index.add(f"images/{pid:06d}/{k:03d}.png", encode(array, "png"), pid, f"{k:03d}")
            bar.update(len(images))
        bar.close()
        index.write()
    return n
