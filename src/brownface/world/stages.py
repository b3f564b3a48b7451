"""Entry points that build the world's data sets from the validated ``world`` config section.

These are what the Snakemake adapters call; each writes its outputs atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.models.factory import world_generator
from brownface.world.fr_train_set import build_fr_train_set
from brownface.world.ijb_set import build_ijbc
from brownface.world.multipie_set import MultiPieSpec, build_multipie
from brownface.world.verification_sets import build_cfp_fp, build_lfw

log = logging.getLogger(__name__)


def build_world_multipie(world: dict, root: Path, landmarks: Path) -> None:
    """The Multi-PIE-layout tree and its landmark CSV."""
    mp = world["multipie"]
    spec = MultiPieSpec(
        subjects=mp["subjects"],
        image_size=mp["image_size"],
        attendance=mp["attendance"],
        cameras=tuple(mp["cameras"]),
        flashes=tuple(mp["flashes"]),
    )
    renderer = world_generator(world).renderer
    n = build_multipie(renderer, world["seed"], Path(root), Path(landmarks), spec)
    log.info("multipie: %d images of %d subjects in %s", n, spec.subjects, root)


def build_world_lfw(world: dict, lfw_bin: Path, lfw_tree: Path, lfw_pairs: Path) -> None:
    """lfw.bin, and the same pairs as an LFW tree with pairs.txt."""
    bm = world["benchmarks"]
    renderer = world_generator(world).renderer
    build_lfw(
        renderer,
        world["seed"],
        Path(lfw_bin),
        Path(lfw_tree),
        Path(lfw_pairs),
        folds=bm["lfw_folds"],
        pairs_per_fold=bm["lfw_pairs_per_fold"],
        size=bm["image_size"],
    )
    log.info("lfw: %d pairs", bm["lfw_folds"] * bm["lfw_pairs_per_fold"] * 2)


def build_world_cfp_fp(world: dict, cfp_fp_bin: Path) -> None:
    """cfp_fp.bin: frontal-profile pairs."""
    bm = world["benchmarks"]
    renderer = world_generator(world).renderer
    build_cfp_fp(
        renderer,
        world["seed"],
        Path(cfp_fp_bin),
        folds=bm["cfp_fp_folds"],
        people_per_fold=bm["cfp_fp_people_per_fold"],
        size=bm["image_size"],
    )
    log.info("cfp_fp: %d pairs", bm["cfp_fp_folds"] * bm["cfp_fp_people_per_fold"] * 14)


def build_world_ijbc(world: dict, root: Path) -> None:
    """The IJB-C-layout template set."""
    bm = world["benchmarks"]
    renderer = world_generator(world).renderer
    n = build_ijbc(
        renderer,
        world["seed"],
        Path(root),
        subjects=bm["ijbc_subjects"],
        image_size=bm["ijbc_image_size"],
    )
    log.info("ijbc: %d images of %d subjects", n, bm["ijbc_subjects"])


def build_world_fr_train(world: dict, root: Path) -> None:
    """Training images of the world's reference FR network."""
    fr = world["reference_fr"]
    renderer = world_generator(world).renderer
    n = build_fr_train_set(
        renderer,
        world["seed"],
        Path(root),
        identities=fr["identities"],
        images_per_identity=fr["images_per_identity"],
        image_size=fr["image_size"],
    )
    log.info("reference FR training set: %d images of %d identities", n, fr["identities"])
