"""Stage entry points of the leakage rules: embed one shard of a face collection with the
reference FR, merge the shards into ``results/leakage/<name>/embeddings.h5``, and measure a
dataset's identities against it."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from brownface.errors import UserError
from brownface.evaluate.binfile import read_bin_encoded
from brownface.imageio import from_uint8, to_uint8
from brownface.leakage.collection import face_collection
from brownface.leakage.embed import EmbedParams, embed_collection
from brownface.leakage.measure import measure_leakage
from brownface.leakage.sheet import FacePair, pairs_sheet
from brownface.models.checkpoints import sha256_file
from brownface.models.device import resolve_device
from brownface.models.fr import FRSpec, fr_provenance, load_fr
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.store import (
    EmbeddingStore,
    IdentityStore,
    VariationStore,
    atomic_path,
    merge_shards,
)

log = logging.getLogger(__name__)

FR_VIEW = 112  # side of the faces in the pairs sheet (the ArcFace crop, as FR networks see it)


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
    generator: GeneratorSpec | None = None,  # renders the synthetic side of the pairs sheet
    collection: Mapping[str, str] | None = None,  # {source, path} of the real faces' images
    pairs_out: str | Path | None = None,  # the closest-pairs sheet (PNG)
    truth: bool = False,  # the real faces are the world's training set: record the truth
    title: str = "",  # the pairs sheet's title
    variations: str | Path | None = None,  # the dataset's variations store: measure each image
    device: str = "auto",
) -> None:
    """The leakage of one identities store against one real collection, as JSON, and the
    sheet of its closest pairs; with ``variations``, of every variation too."""
    dev = resolve_device(device)
    fr = load_fr(reference_fr, device=dev).eval()
    impostors = impostor_cosines(verification_set, fr, fr.spec.input_size)
    synthetic = IdentityStore.read(identities)
    real_store = EmbeddingStore.read(real)
    names, means = real_store.identity_means()
    e = _unit(synthetic.embedding)
    if e.shape[1] != means.shape[1]:
        raise UserError(
            f"{identities}: embeddings are {e.shape[1]}-d but {real} holds {means.shape[1]}-d "
            "ones (another FR network?)"
        )
    gen = None if generator is None else load_generator(generator, dev)
    truly_leaked = None
    if truth:
        if gen is None or not hasattr(gen, "training_identity"):
            raise UserError(
                f"{real}: the ground truth of leakage needs the world generator (it knows "
                "which faces are its training identities)"
            )
        w = torch.from_numpy(synthetic.w).to(dev)
        truly_leaked = (gen.training_identity(w) >= 0).cpu().numpy()
    result = measure_leakage(
        e,
        torch.from_numpy(means),
        impostors,
        fars=fars,
        k=k,
        synthetic_names=[f"{int(i):06d}" for i in synthetic.identity],
        real_names=list(names),
        truly_leaked=truly_leaked,
    )
    if variations is not None:
        images = VariationStore.read(variations)
        n, v, _ = images.embedding.shape
        per_image = measure_leakage(
            _unit(images.embedding.reshape(n * v, -1)), torch.from_numpy(means), impostors,
            fars=fars, k=0,
        )  # fmt: skip
        per_image_record = per_image.to_dict()
        per_image_record.pop("closest")
        per_image_record["identities_with_a_leaked_image"] = {
            key: float(per_image.called(key).reshape(n, v).any(axis=1).mean())
            for key in per_image.leaked
        }
        per_image_record["path"] = str(variations)
    record = {
        "identities": str(identities),
        "real_faces": {"path": str(real), "sha256": sha256_file(real)},
        "verification_set": {"path": str(verification_set), "impostor_pairs": int(impostors.size)},
        "reference_fr": fr_provenance(fr.spec),
        **result.to_dict(),
        **({} if variations is None else {"variations": per_image_record}),
    }
    log.info(
        "%s against %s: leaked %s (FAR: fraction), nearest median %.1f deg",
        identities, real, result.leaked, result.nearest_degrees["median"],
    )  # fmt: skip
    if result.truth is not None:
        log.info("ground truth: %.3f leaked; FR agreement %s", result.truth["leaked"],
                 result.truth["agreement"])  # fmt: skip
    if pairs_out is not None:
        if gen is None or collection is None:
            raise ValueError(
                "measure_dataset_leakage: the pairs sheet needs generator and collection"
            )
        pairs = closest_pair_images(result.closest, synthetic, real_store, collection, gen)
        pairs_sheet(pairs, pairs_out, title=title)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


def _unit(embeddings: np.ndarray) -> torch.Tensor:
    """Stored embeddings, normalised in float64, as float32 rows."""
    e = torch.from_numpy(np.ascontiguousarray(embeddings)).double()
    return (e / e.norm(dim=1, keepdim=True)).float()


def closest_pair_images(
    closest: Sequence[Mapping],  # Leakage.closest
    synthetic: IdentityStore,
    real: EmbeddingStore,
    collection: Mapping[str, str],  # {source, path}
    generator: torch.nn.Module,
) -> list[FacePair]:
    """Both faces of each closest pair as the FR saw them: the synthetic identity's reference
    image cut with the generator's FR crop, and the real identity's first image (a generator
    frame cut the same way, anything else as stored)."""
    faces = face_collection(collection["source"], collection["path"])
    where = {name: i for i, name in enumerate(faces.names)}
    first = {}
    for label, path in zip(real.label, real.path, strict=True):
        first.setdefault(str(label), str(path))
    size = generator.img_resolution
    device = generator.w_avg.device
    pairs = []
    for pair in closest:
        w = torch.from_numpy(synthetic.w[int(pair["synthetic"])][None]).to(device)
        with torch.inference_mode():
            syn = to_uint8(generator.fr_crop(generator.synthesis(w), FR_VIEW))[0]
        name = first[str(pair["real_name"])]
        if name not in where:
            raise UserError(f"{collection['path']}: {name} (in {real}) is not in the collection")
        image = faces.image(where[name])
        if faces.generator_frame:
            x = from_uint8(image[None]).to(device)
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            with torch.inference_mode():
                image = to_uint8(generator.fr_crop(x, FR_VIEW))[0]
        pairs.append(
            FacePair(syn, image, float(pair["degrees"]), str(pair["synthetic_name"]), name)
        )
    return pairs


def identity_capacity(
    stores: Mapping[int, str],  # N -> the identities store of a run with N identities
    *,
    ict: float,  # radians (the recipe's)
    generator: GeneratorSpec,  # the world's gives the ground truth
    table: str | Path,  # capacity.csv
    figure: str | Path,  # capacity.png
    label: str = "Langevin",
    device: str = "auto",
) -> None:
    """The capacity measures of every run, as a table and a figure."""
    from brownface.leakage.capacity import capacity_table, write_capacity
    from brownface.report.figures import capacity_figure

    gen = load_generator(generator, resolve_device(device))
    result = capacity_table({int(n): s for n, s in stores.items()}, ict, gen)
    for row in result.itertuples():
        log.info("N %d: %.2f with a neighbour inside ICT, %d distinct (truth %s)",
                 row.n, row.frac_below_ict, row.distinct, row.true_distinct)  # fmt: skip
    write_capacity(result, table)
    capacity_figure(table, figure, ict_deg=math.degrees(ict), label=label)
