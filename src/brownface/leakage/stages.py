"""Stage entry points of the leakage rules: embed one shard of a face collection with the
reference FR, and merge the shards into ``results/leakage/<name>/embeddings.h5``."""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.leakage.collection import face_collection
from brownface.leakage.embed import EmbedParams, embed_collection
from brownface.models.device import resolve_device
from brownface.models.fr import FRSpec, fr_provenance, load_fr
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.store import EmbeddingStore, merge_shards

log = logging.getLogger(__name__)


def embed_real_faces(
    source: str,  # real_faces.<name>.source
    path: str | Path,  # real_faces.<name>.path
    reference_fr: FRSpec,
    generator: GeneratorSpec | None,  # for generator frames (its FR crop), else None
    *,
    shard: int,
    shards: int,
    params: EmbedParams,
    out: str | Path,  # this shard's embeddings store
    checkpoint: str | Path,
    device: str = "auto",
) -> None:
    """One shard of a face collection's embeddings (resuming from its checkpoint)."""
    dev = resolve_device(device)
    collection = face_collection(source, path)
    fr = load_fr(reference_fr, device=dev)
    provenance: dict = {"reference_fr": fr_provenance(fr.spec)}
    crop = resolution = None
    if collection.generator_frame:
        if generator is None:
            raise ValueError("embed_real_faces: generator frames need the generator spec")
        gen = load_generator(generator, dev)
        crop, resolution = gen.fr_crop, gen.img_resolution
        provenance["generator"] = generator.provenance()
    log.info("%s (%s): %d images, shard %d of %d", path, source, len(collection), shard, shards)
    store = embed_collection(
        collection,
        fr,
        input_size=fr.spec.input_size,
        shard=shard,
        shards=shards,
        params=params,
        crop=crop,
        resolution=resolution,
        checkpoint=checkpoint,
        provenance=provenance,
        device=dev,
    )
    store.write(out)


def merge_real_faces(shards: list[str | Path], *, out: str | Path) -> None:
    """The shards' stores tiled into one (the bytes one job would write); checks that they
    cover the collection's images once each."""
    if len(shards) == 1:  # one job: its store, validated on the way
        EmbeddingStore.read(shards[0]).write(out)
        return
    merge_shards([Path(s) for s in shards], Path(out))
