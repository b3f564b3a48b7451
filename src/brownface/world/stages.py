"""Stage entry points of the world rules, named after them.

The data set builders take the validated ``world`` config section: the renderer's keys
(``layout.RENDERER_KEYS``) and their own section (``layout.world_inputs`` picks exactly those, so
changing one set's settings rebuilds only that set). Each writes its outputs atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from brownface.train.recipe import TrainRecipe
from brownface.train.stages import train_fr
from brownface.world.fr_train_set import build_fr_train_set
from brownface.world.ijb_set import build_ijbc
from brownface.world.layout import REFERENCE_FR_NAME
from brownface.world.multipie_set import MultiPieSpec, build_multipie
from brownface.world.renderer import FaceRenderer
from brownface.world.sheet import world_sheet
from brownface.world.training_faces import build_training_faces
from brownface.world.verification_sets import build_cfp_fp, build_lfw

log = logging.getLogger(__name__)


def world_renderer(world: dict) -> FaceRenderer:
    """The world's face renderer (the one inside its generator)."""
    return FaceRenderer(
        resolution=world["resolution"], identity_dim=world["identity_dim"], seed=world["seed"]
    )


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
    renderer = world_renderer(world)
    n = build_multipie(renderer, world["seed"], Path(root), Path(landmarks), spec)
    log.info("multipie: %d images of %d subjects in %s", n, spec.subjects, root)


def build_world_lfw(world: dict, lfw_bin: Path, lfw_tree: Path, lfw_pairs: Path) -> None:
    """lfw.bin, and the same pairs as an LFW tree with pairs.txt."""
    bm = world["benchmarks"]
    renderer = world_renderer(world)
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
    renderer = world_renderer(world)
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
    renderer = world_renderer(world)
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
    renderer = world_renderer(world)
    n = build_fr_train_set(
        renderer,
        world["seed"],
        Path(root),
        identities=fr["identities"],
        images_per_identity=fr["images_per_identity"],
        image_size=fr["image_size"],
    )
    log.info("reference FR training set: %d images of %d identities", n, fr["identities"])


def build_world_training_faces(world: dict, root: Path) -> None:
    """The generator's training faces (an FFHQ-like tree of generator frames)."""
    ts = world["training_set"]
    n = build_training_faces(
        world_renderer(world),
        world["seed"],
        Path(root),
        identities=ts["identities"],
        images_per_identity=ts["images_per_identity"],
    )
    log.info("training faces: %d images of %d identities", n, ts["identities"])


def plot_world_sheet(world: dict, out: Path) -> None:
    """The contact sheet: world identities x pose, light and expression."""
    world_sheet(world_renderer(world), world["seed"], Path(out))


def train_world_reference_fr(
    recipe: TrainRecipe,
    *,
    data_root: Path,
    out_dir: Path,
    checkpoint: Path,
    validation: dict[str, str],
    device: str = "auto",
) -> None:
    """The world's off-the-shelf FR network (an ordinary training run, named for reports)."""
    train_fr(
        recipe,
        name=REFERENCE_FR_NAME,
        data_root=data_root,
        out_dir=out_dir,
        checkpoint=checkpoint,
        validation=validation,
        device=device,
    )
