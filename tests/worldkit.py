"""Small shared builders for the tests: the world and an untrained FR network on it."""

from pathlib import Path

import torch

from brownface.models.fr import FRModel, FRSpec, build_backbone, save_fr_model
from brownface.models.generator import GeneratorSpec
from brownface.sampling.embedder import LatentEmbedder
from brownface.world.generator import WorldGenerator

SMALL_FR = FRSpec(
    kind="iresnet",
    arch="iresnet",
    layers=(1, 1, 1, 1),
    widths=(8, 8, 16, 16),
    input_size=16,
    embedding_size=32,
)
#: The demo world's generator (seed 0, 64 px), as the config's generator section gives it.
WORLD_SPEC = GeneratorSpec(
    kind="world",
    truncation_psi=0.7,
    noise_mode="const",
    options=dict(seed=0, resolution=64, identity_dim=16, z_dim=32, w_dim=32),
)


def small_fr() -> FRModel:
    """A seeded, untrained 16x16 iResNet in eval mode."""
    torch.manual_seed(0)
    return FRModel(build_backbone(SMALL_FR), SMALL_FR).eval()


def small_embedder(world: WorldGenerator | None = None) -> LatentEmbedder:
    """e(w) through the world generator and the small FR network."""
    return LatentEmbedder(world or WorldGenerator(seed=0), small_fr()).eval()


def small_fr_file(path: Path) -> FRSpec:
    """The small FR network saved as a brownface model.pt, and the spec that loads it."""
    fr = small_fr()
    save_fr_model(path, fr.backbone, fr.spec)
    return FRSpec(kind="brownface", checkpoint=str(path))
