"""Stage entry points of the leakage rules: embed one shard of a face collection with the
reference FR, merge the shards into ``results/leakage/<name>/embeddings.h5``, and measure a
dataset's identities against it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from brownface.errors import UserError
from brownface.evaluate.binfile import read_bin_encoded
from brownface.leakage.collection import face_collection
from brownface.leakage.embed import EmbedParams, embed_collection
from brownface.leakage.measure import measure_leakage
from brownface.models.checkpoints import sha256_file
from brownface.models.device import resolve_device
from brownface.models.fr import FRSpec, fr_provenance, load_fr
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.store import EmbeddingStore, IdentityStore, atomic_path, merge_shards

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


def impostor_cosines(
    verification_set: str | Path, fr: torch.nn.Module, input_size: int, batch_size: int = 64
) -> np.ndarray:
    """The FR's cosines of a ``.bin`` set's impostor pairs, with the embedding the identities
    are compared by (no flip): what the thresholds at a FAR are read from."""
    issame = read_bin_encoded(verification_set).issame
    store = embed_collection(
        face_collection("bin", verification_set), fr, input_size=input_size,
        params=EmbedParams(batch_size=batch_size, checkpoint_every=0),
    )  # fmt: skip
    e = store.embedding.astype(np.float64)
    cos = (e[0::2] * e[1::2]).sum(1)
    return cos[~np.asarray(issame, bool)]


def measure_dataset_leakage(
    identities: str | Path,  # the dataset's identities store
    real: str | Path,  # an embeddings store (real_faces)
    verification_set: str | Path,  # a .bin set whose impostor pairs give the thresholds
    reference_fr: FRSpec,
    *,
    fars: Sequence[float],
    k: int,
    out: str | Path,  # the JSON
    device: str = "auto",
) -> None:
    """The leakage of one identities store against one real collection, as JSON."""
    dev = resolve_device(device)
    fr = load_fr(reference_fr, device=dev).eval()
    impostors = impostor_cosines(verification_set, fr, fr.spec.input_size)
    synthetic = IdentityStore.read(identities)
    real_store = EmbeddingStore.read(real)
    names, means = real_store.identity_means()
    e = torch.from_numpy(synthetic.embedding).double()
    e = (e / e.norm(dim=1, keepdim=True)).float()
    if e.shape[1] != means.shape[1]:
        raise UserError(
            f"{identities}: embeddings are {e.shape[1]}-d but {real} holds {means.shape[1]}-d "
            "ones (another FR network?)"
        )
    result = measure_leakage(
        e, torch.from_numpy(means), impostors, fars=fars, k=k, real_names=list(names)
    )
    record = {
        "identities": str(identities),
        "real_faces": {"path": str(real), "sha256": sha256_file(real)},
        "verification_set": {"path": str(verification_set), "impostor_pairs": int(impostors.size)},
        "reference_fr": fr_provenance(fr.spec),
        **result.to_dict(),
    }
    log.info(
        "%s against %s: leaked %s (FAR: fraction), nearest median %.1f deg",
        identities, real, result.leaked, result.nearest_degrees["median"],
    )  # fmt: skip
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
