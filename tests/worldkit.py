"""Small shared builders for the tests: the world and an untrained FR network on it."""

import torch

from brownface.models.fr import FRModel, FRSpec, build_backbone
from brownface.sampling.embedder import LatentEmbedder, world_crop_matrix
from brownface.world.generator import WorldGenerator

SMALL_FR = FRSpec(
    kind="iresnet",
    arch="iresnet",
    layers=(1, 1, 1, 1),
    widths=(8, 8, 16, 16),
    input_size=16,
    embedding_size=32,
)


def small_embedder(world: WorldGenerator | None = None) -> LatentEmbedder:
    """e(w) through the world generator and a seeded, untrained 16x16 iResNet (eval mode)."""
    world = world or WorldGenerator(seed=0)
    torch.manual_seed(0)
    fr = FRModel(build_backbone(SMALL_FR), SMALL_FR).eval()
    return LatentEmbedder(world, fr, world_crop_matrix(world, 16)).eval()
