"""IJB-B / IJB-C image features: aligned crops, the network, and a resumable HDF5 cache.

Per image (insightface ``eval_ijbc.py``, ``shared/notes/formats.md`` section 7): the least-
squares similarity from its 5 landmarks to the ArcFace 112 template, a bilinear warp with
black border to 112x112, rounded to uint8 as ``cv2.warpAffine`` returns it, then
``(x / 255 - 0.5) / 0.5``; the network's raw (un-normalised) features of the crop and of its
mirror image are stored side by side, ``[N, 2, D]``, so every scoring switch (flip, norm,
detector score) is a choice made later without re-embedding.

The work is an image range ``[start, stop)`` of the meta files' rows, so a cluster runs shards
in parallel. Features are appended to the cache in batches (a DataLoader decodes and aligns
in ``workers`` processes); a rerun after a kill opens the cache, checks that it belongs to the
same model, images and range, and continues after its last complete batch. The finished
cache is renamed into place, so an output never exists half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from brownface.errors import UserError
from brownface.evaluate.binfile import decode_image
from brownface.evaluate.ijb import IJBMeta, image_dir
from brownface.models.align import ARCFACE_TEMPLATE_112, fit_similarity, warp_affine
from brownface.runlog import progress
from brownface.store.base import StoreError, corrupt

log = logging.getLogger(__name__)

CROP = 112  # the ArcFace template's crop, whatever the network's input size
FORMAT = "brownface/ijb_features"


def align_ijb_image(image: np.ndarray, landmarks: np.ndarray) -> torch.Tensor:
    """An HxWx3 uint8 RGB image and its 5 landmarks [5, 2] -> the 112x112 uint8 crop [3, H, W].

    The similarity is fitted in float64 (skimage's ``SimilarityTransform.estimate`` is); the
    warp samples bilinearly with zeros outside (``warpAffine``'s ``borderValue=0.0``).
    """
    src = torch.from_numpy(np.asarray(landmarks, dtype=np.float64))[None]
    matrix = fit_similarity(src, ARCFACE_TEMPLATE_112.double()[None])
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].double()
    crop = warp_affine(x, matrix, CROP)[0]
    return crop.round().clamp(0, 255).to(torch.uint8)


class AlignedImages(Dataset):
    """The aligned crops of rows ``[start, stop)`` of an IJB meta (decoded on access)."""

    def __init__(self, root: str | Path, meta: IJBMeta, start: int, stop: int) -> None:
        self.folder = image_dir(root)
        self.names = meta.image_names[start:stop]
        self.landmarks = meta.landmarks[start:stop]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.folder / self.names[i]
        try:
            data = path.read_bytes()
        except OSError:
            raise UserError(f"{path}: IJB image listed in the meta files is missing") from None
        return align_ijb_image(decode_image(data, str(path)), self.landmarks[i])


@dataclass(frozen=True)
class ExtractionParams:
    batch_size: int = 128
    workers: int = 0  # DataLoader processes decoding and aligning images


def cache_key(meta: IJBMeta, start: int, stop: int, model_sha256: str) -> str:
    """What a cache's features depend on: the model, the rows' names and landmarks, the range."""
    digest = hashlib.sha256()
    digest.update(json.dumps([model_sha256, start, stop, CROP]).encode())
    digest.update("\n".join(meta.image_names[start:stop]).encode())
    digest.update(np.ascontiguousarray(meta.landmarks[start:stop]).tobytes())
    return digest.hexdigest()


def _open_partial(path: Path, key: str, n: int) -> tuple[h5py.File, int]:
    """The partial cache at ``path`` and its completed rows; a foreign or broken one is
    replaced (it belongs to other inputs, or was killed mid-write of its header)."""
    if path.exists():
        try:
            f = h5py.File(path, "a")
        except OSError:
            log.warning("%s: unreadable partial cache, starting over", path)
        else:
            if f.attrs.get("key") == key and "features" in f:
                done = int(f.attrs["done"])
                log.info("%s: resuming after %d of %d images", path, done, n)
                return f, done
            f.close()
            log.info("%s: partial cache of other inputs, starting over", path)
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    return h5py.File(path, "w"), 0


def extract_features(
    embed: torch.nn.Module,  # raw features of [B, 3, 112, 112] crops in [-1, 1]
    root: str | Path,  # the benchmark root (loose_crop/, meta/)
    meta: IJBMeta,
    out: str | Path,  # the finished cache (HDF5)
    *,
    start: int,
    stop: int,
    model_sha256: str,
    partial: str | Path | None = None,  # where the cache grows; default beside ``out``
    params: ExtractionParams = ExtractionParams(),
    device: torch.device | str = "cpu",
    provenance: dict | None = None,
) -> Path:
    """Features [stop - start, 2, D] (image, mirror) of rows [start, stop) into ``out``."""
    if not 0 <= start <= stop <= len(meta.image_names):
        raise UserError(
            f"IJB image range [{start}, {stop}) outside the meta's {len(meta.image_names)} rows"
        )
    out = Path(out)
    partial = Path(partial) if partial else out.with_name(f".{out.name}.partial")
    n = stop - start
    key = cache_key(meta, start, stop, model_sha256)
    f, done = _open_partial(partial, key, n)
    try:
        if done == 0:
            f.attrs.update(
                format=FORMAT,
                key=key,
                start=start,
                stop=stop,
                done=0,
                provenance=json.dumps(provenance or {}, sort_keys=True),
            )
        loader = DataLoader(
            torch.utils.data.Subset(AlignedImages(root, meta, start, stop), range(done, n)),
            batch_size=params.batch_size,
            num_workers=params.workers,
        )
        bar = progress(n, "IJB features", unit="img")
        bar.update(done)
        embed.eval()
        with torch.inference_mode():
            for crops in loader:
                x = (crops.to(device).float() / 255 - 0.5) / 0.5
                feats = torch.stack([embed(x), embed(torch.flip(x, dims=[3]))], 1)
                feats = feats.float().cpu().numpy()
                if "features" not in f:
                    f.create_dataset(
                        "features",
                        shape=(n, 2, feats.shape[-1]),
                        dtype=np.float32,
                        chunks=(min(n, params.batch_size), 2, feats.shape[-1]),
                    )
                f["features"][done : done + len(feats)] = feats
                done += len(feats)
                f.attrs["done"] = done  # after the rows: a kill in between only redoes a batch
                f.flush()
                bar.update(len(feats))
        bar.close()
        if n == 0:
            f.create_dataset("features", shape=(0, 2, 0), dtype=np.float32)
    finally:
        f.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, out)
    return out


def read_features(paths: list[str | Path], n_images: int) -> np.ndarray:
    """The shards' caches, in order, as one [n_images, 2, D] array; their ranges must tile
    [0, n_images) exactly (the shards of one benchmark, listed in order)."""
    parts, expect = [], 0
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise StoreError(f"{path}: not a brownface IJB feature cache")
                start, stop, done = (int(f.attrs[k]) for k in ("start", "stop", "done"))
                if start != expect or done != stop - start:
                    raise StoreError(
                        f"{path}: holds images [{start}, {start + done}) but [{expect}, ...) "
                        "is next; the caches must be one benchmark's shards, complete and in order"
                    )
                parts.append(f["features"][()])
                expect = stop
        except OSError:
            raise corrupt(path) from None
    if expect != n_images:
        raise StoreError(
            f"{paths[-1] if paths else 'IJB features'}: the caches cover {expect} of {n_images} images"
        )
    dims = {p.shape[-1] for p in parts if len(p)}
    if len(dims) > 1:
        raise StoreError(f"IJB feature caches disagree on the feature size: {sorted(dims)}")
    return np.concatenate([p for p in parts if len(p)]) if dims else np.zeros((0, 2, 0), np.float32)


def read_cache_provenance(path: str | Path) -> dict:
    """The provenance the extraction wrote into a feature cache (model name, files, sha256)."""
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["provenance"])
    except (OSError, KeyError, ValueError):
        raise corrupt(path) from None
