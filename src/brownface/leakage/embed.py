"""Embedding a face collection with an FR network into an ``embeddings`` store.

One job embeds the images [start, stop) of a collection (a shard), ``batch_size`` at a time,
with the network in inference mode and no flip (the embedding e(x) that Langevin's identities
are compared with), normalised to unit length. Frames of the generator (FFHQ's images for an
FFHQ StyleGAN2) are resized to its resolution and cut with its FR crop, the same crop its
samples get. The job checkpoints the rows done every ``checkpoint_every`` batches and resumes
from a checkpoint of the very same run; the shards' stores merge (``store.merge_shards``) into
the bytes one job would write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from brownface.errors import UserError
from brownface.imageio import from_uint8
from brownface.leakage.collection import FaceCollection
from brownface.runlog import progress
from brownface.sharding import shard_range
from brownface.store import (
    EmbeddingStore,
    load_matching_checkpoint,
    run_key,
    save_checkpoint,
    shard_provenance,
)

log = logging.getLogger(__name__)

#: A crop from the generator's frame [B, 3, R, R] in [-1, 1] to an FR input of ``size``.
FrameCrop = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class EmbedParams:
    batch_size: int = 64
    checkpoint_every: int = 20  # batches between checkpoints (0 = none)


def _batch(collection: FaceCollection, rows: range) -> torch.Tensor:
    images = [collection.image(i) for i in rows]
    shape = images[0].shape
    for i, image in zip(rows, images, strict=True):
        if image.shape != shape:
            raise UserError(
                f"{collection.location}: {collection.names[i]} is {image.shape[1]}x"
                f"{image.shape[0]} but {collection.names[rows[0]]} is {shape[1]}x{shape[0]}; "
                "the images of a collection must be the same size"
            )
    return from_uint8(np.stack(images))


def embed_images(
    fr: torch.nn.Module,  # brownface FRModel: [B, 3, H, W] in [-1, 1] -> raw [B, D]
    images: torch.Tensor,
    input_size: int,
    crop: FrameCrop | None = None,
    resolution: int | None = None,  # the generator's frame size (with ``crop``)
) -> torch.Tensor:
    """Unit embeddings of a batch of images ([-1, 1]); frames are cut with ``crop`` first."""
    if crop is not None:
        if resolution is not None and images.shape[-1] != resolution:
            images = F.interpolate(
                images, size=(resolution, resolution), mode="bilinear", antialias=True,
                align_corners=False,
            )  # fmt: skip
        images = crop(images, input_size)
    with torch.inference_mode():
        e = fr(images).float()
    return e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)


def embed_collection(
    collection: FaceCollection,
    fr: torch.nn.Module,
    *,
    input_size: int,  # the FR network's input side
    shard: int = 0,
    shards: int = 1,
    params: EmbedParams = EmbedParams(),
    crop: FrameCrop | None = None,  # the generator's FR crop, for generator_frames
    resolution: int | None = None,  # the generator's frame size, for generator_frames
    checkpoint: str | Path | None = None,
    provenance: dict | None = None,  # the FR (and generator) provenance; part of the run key
    device: torch.device | str = "cpu",
) -> EmbeddingStore:
    """The embeddings store of shard ``shard`` of ``shards`` of the collection (rows split
    in order, each starting on a batch); resumes from ``checkpoint`` when it is this run's."""
    if collection.generator_frame and crop is None:
        raise UserError(f"{collection.location}: generator frames need the generator's FR crop")
    # Shards start on multiples of the batch size, so every batch holds the same images
    # however many shards there are, and the merged store has the same bytes.
    start, stop = shard_range(len(collection), shards, shard, align=params.batch_size)
    if stop == start:
        raise UserError(
            f"{collection.location}: shard {shard} of {shards} holds no image of the "
            f"{len(collection)}; use fewer shards"
        )
    context = {
        "source": collection.source,
        "names": collection.names[start:stop],
        "labels": collection.labels[start:stop],
        "range": [start, stop],
        "input_size": input_size,
        "resolution": resolution,
        "provenance": provenance or {},
    }
    key = run_key(params, context)
    done, rows = 0, []
    ckpt = load_matching_checkpoint(checkpoint, "embeddings", key)
    if ckpt is not None:
        done = ckpt.iteration
        rows = [ckpt.arrays["embedding"]]
        log.info("%s: resuming at image %d of %d", checkpoint, start + done, stop)
    fr.eval()
    bar = progress(stop - start, "embeddings", unit="img")
    bar.update(done)
    batches = 0
    for b0 in range(start + done, stop, params.batch_size):
        batch = range(b0, min(b0 + params.batch_size, stop))
        x = _batch(collection, batch).to(device)
        rows.append(embed_images(fr, x, input_size, crop, resolution).cpu().numpy())
        done += len(batch)
        batches += 1
        bar.update(len(batch))
        if checkpoint and params.checkpoint_every and batches % params.checkpoint_every == 0:
            save_checkpoint(
                checkpoint,
                arrays={"embedding": np.concatenate(rows)},
                iteration=done,
                rng={},
                meta={"loop": "embeddings", "key": key},
            )
    bar.close()
    return EmbeddingStore(
        label=np.array(collection.labels[start:stop]),
        path=np.array(collection.names[start:stop]),
        embedding=np.concatenate(rows).astype(np.float32),
        provenance={
            **(provenance or {}),
            "collection": {"source": collection.source, "location": collection.location,
                           "images": len(collection)},
            **({"shard": shard_provenance(shard, shards, start, stop)} if shards > 1 else {}),
        },
    )  # fmt: skip
