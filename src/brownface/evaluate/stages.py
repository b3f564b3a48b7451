"""Stage entry points of the evaluation rules: an FR model on a verification set (.bin), and
on an IJB benchmark (feature shards, then scoring)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from brownface.evaluate.ijb import read_ijb
from brownface.evaluate.ijb_eval import score_ijb, write_ijb_outputs
from brownface.evaluate.ijb_features import (
    ExtractionParams,
    extract_features,
    read_cache_provenance,
)
from brownface.evaluate.ijb_score import IJBSwitches
from brownface.evaluate.verification import evaluate_bin, evaluate_lfw_tree, write_result_json
from brownface.models.checkpoints import sha256_file
from brownface.models.device import resolve_device
from brownface.models.fr import FRModel, FRSpec, load_fr
from brownface.sharding import shard_range

log = logging.getLogger(__name__)


def _load_model(model: FRSpec | Mapping[str, Any], device: str) -> tuple[FRModel, torch.device]:
    """The FR network of a spec (a brownface model.pt, an insightface backbone.pth or an
    AdaFace .ckpt) and the device it was put on."""
    spec = model if isinstance(model, FRSpec) else FRSpec.from_dict(dict(model))
    dev = resolve_device(device)
    return load_fr(spec, device=dev), dev


def _model_provenance(fr: FRModel) -> dict[str, Any]:
    """What a result records about its model: kind, file, sha256 and training data (a
    brownface model carries it; a real model's config label says it)."""
    checkpoint = str(fr.spec.checkpoint)
    return {
        "model_kind": fr.spec.kind,
        "model_file": checkpoint,
        "model_sha256": sha256_file(checkpoint),
        "training_data": fr.spec.extra.get("training_data"),
    }


def evaluate_verification(
    model: FRSpec | Mapping[str, Any],  # the FR spec (FRSpec.to_dict) of the model to score
    benchmark: str | Path | Mapping[str, str],  # a .bin set, or {pairs, images} of LFW
    out: str | Path,  # the result JSON
    *,
    name: str,  # the benchmark's name (config verification_sets.<name>)
    model_name: str,  # the model's name (a dataset replica, or a real_models key)
    device: str = "auto",
) -> None:
    """Flip-fused 10-fold accuracy of a model on a ``.bin`` set or an original LFW tree, as a
    result JSON.

    The JSON records the model (its name, kind, file and sha256, and its training data) and
    the benchmark (name and file sha256: the .bin's, or pairs.txt's for a tree).
    """
    fr, dev = _load_model(model, device)
    if isinstance(benchmark, Mapping):
        pairs, images = benchmark["pairs"], benchmark["images"]
        result = evaluate_lfw_tree(images, pairs, fr, batch_size=128, device=dev)
        files = {"benchmark_file": str(pairs), "benchmark_images": str(images)}
        digest = sha256_file(pairs)
    else:
        result = evaluate_bin(benchmark, fr, batch_size=128, device=dev)
        files, digest = {"benchmark_file": str(benchmark)}, sha256_file(benchmark)
    provenance = {**_model_provenance(fr), **files, "benchmark_sha256": digest}
    write_result_json(out, result, model=model_name, benchmark=name, provenance=provenance)
    log.info("%s on %s: accuracy %.4f +- %.4f", model_name, name, result.accuracy, result.std)


def ijb_features(
    model: FRSpec | Mapping[str, Any],  # the FR spec (FRSpec.to_dict) of the model to score
    root: str | Path,  # the IJB benchmark root
    out: str | Path,  # this shard's feature cache
    *,
    name: str,  # ijbb or ijbc
    model_name: str,  # the model's name (a dataset replica, or a real_models key)
    shard: int,
    shards: int,
    partial: str | Path,  # where the cache grows until complete (resumed after a kill)
    batch_size: int = 128,
    workers: int = 0,
    device: str = "auto",
) -> None:
    """Raw features (image, mirror) of one shard's image range of an IJB benchmark."""
    meta = read_ijb(root, prefix=name)
    # Shards start on batch boundaries: each batch holds the same images however many shards.
    start, stop = shard_range(len(meta.image_names), shards, shard, align=batch_size)
    fr, dev = _load_model(model, device)
    provenance = {"model": model_name, **_model_provenance(fr), "benchmark_root": str(root)}
    log.info("%s shard %d/%d: images [%d, %d)", name, shard, shards, start, stop)
    extract_features(
        fr,
        root,
        meta,
        out,
        start=start,
        stop=stop,
        model_sha256=provenance["model_sha256"],
        partial=partial,
        params=ExtractionParams(batch_size=batch_size, workers=workers),
        device=dev,
        provenance=provenance,
    )


def ijb_score(
    root: str | Path,
    features: list[str],  # every shard's cache, in shard order
    *,
    name: str,
    switches: IJBSwitches,
    metrics: str | Path,
    roc_csv: str | Path,
    roc_png: str | Path,
) -> None:
    """TAR at FAR (1:1) and, with the 1:N lists, ranks and TPIR; JSON, ROC CSV and PNG."""
    result, roc = score_ijb(root, features, name=name, switches=switches)
    provenance = read_cache_provenance(features[0])
    write_ijb_outputs(
        result,
        roc,
        model=provenance.pop("model"),
        provenance=provenance,
        metrics_path=metrics,
        roc_csv=roc_csv,
        roc_png=roc_png,
    )
    tar = ", ".join(f"{k}: {100 * v:.2f}" for k, v in result["tar_at_far"].items())
    log.info("%s TAR at FAR (%%): %s", name, tar)
    if result["identification"]:
        ident = result["identification"]
        log.info(
            "%s rank-1 %.2f%%, rank-5 %.2f%%", name, 100 * ident["rank_1"], 100 * ident["rank_5"]
        )
