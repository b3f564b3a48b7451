"""Stage entry points of the evaluation rules: an FR model on a verification set (.bin), and
on an IJB benchmark (feature shards, then scoring)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

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
from brownface.models.fr import FRSpec, load_fr
from brownface.sharding import shard_range

log = logging.getLogger(__name__)


def evaluate_verification(
    model: str | Path,  # a brownface model.pt
    benchmark: str | Path | Mapping[str, str],  # a .bin set, or {pairs, images} of LFW
    out: str | Path,  # the result JSON
    *,
    name: str,  # the benchmark's name (config verification_sets.<name>)
    device: str = "auto",
) -> None:
    """Flip-fused 10-fold accuracy of a model on a ``.bin`` set or an original LFW tree, as a
    result JSON.

    The JSON records the model (its name and training data, from the provenance its trainer
    wrote into model.pt, and the file's sha256) and the benchmark (name and file sha256: the
    .bin's, or pairs.txt's for a tree).
    """
    dev = resolve_device(device)
    fr = load_fr(FRSpec(kind="brownface", checkpoint=str(model)), device=dev)
    if isinstance(benchmark, Mapping):
        pairs, images = benchmark["pairs"], benchmark["images"]
        result = evaluate_lfw_tree(images, pairs, fr, batch_size=128, device=dev)
        files = {"benchmark_file": str(pairs), "benchmark_images": str(images)}
        digest = sha256_file(pairs)
    else:
        result = evaluate_bin(benchmark, fr, batch_size=128, device=dev)
        files, digest = {"benchmark_file": str(benchmark)}, sha256_file(benchmark)
    model_name = fr.spec.extra.get("name") or Path(model).parent.name
    provenance = {
        "model_file": str(model),
        "model_sha256": sha256_file(model),
        "training_data": fr.spec.extra.get("training_data"),
        **files,
        "benchmark_sha256": digest,
    }
    write_result_json(out, result, model=model_name, benchmark=name, provenance=provenance)
    log.info("%s on %s: accuracy %.4f +- %.4f", model_name, name, result.accuracy, result.std)


def ijb_features(
    model: str | Path,  # a brownface model.pt
    root: str | Path,  # the IJB benchmark root
    out: str | Path,  # this shard's feature cache
    *,
    name: str,  # ijbb or ijbc
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
    dev = resolve_device(device)
    fr = load_fr(FRSpec(kind="brownface", checkpoint=str(model)), device=dev)
    digest = sha256_file(model)
    provenance = {
        "model": fr.spec.extra.get("name") or Path(model).parent.name,
        "model_file": str(model),
        "model_sha256": digest,
        "training_data": fr.spec.extra.get("training_data"),
        "benchmark_root": str(root),
    }
    log.info("%s shard %d/%d: images [%d, %d)", name, shard, shards, start, stop)
    extract_features(
        fr,
        root,
        meta,
        out,
        start=start,
        stop=stop,
        model_sha256=digest,
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
