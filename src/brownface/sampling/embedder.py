"""e(w) = E(crop(G(w))): the generator, the crop to the FR network's input, and the FR network.

Every sampler sees the generator's latent space through this one differentiable map. The crop
is a fixed similarity from the generator's (FFHQ-aligned) frame to the ArcFace template, as for
generated images no landmarks are detected: for the world it is fitted once to the mean frontal
landmarks of the world's faces.
"""

from __future__ import annotations

import torch
from torch import nn

from brownface.models.align import arcface_template, fit_similarity, warp_affine
from brownface.models.fr import FRModel
from brownface.seeding import torch_generator
from brownface.world.generator import WorldGenerator
from brownface.world.renderer import FaceParams


def world_crop_matrix(generator: WorldGenerator, size: int, samples: int = 512) -> torch.Tensor:
    """[2, 3] pixel matrix: generator frame -> ArcFace crop of ``size``, fitted on the mean
    landmarks of frontal, neutral world faces (the generator's aligned framing)."""
    renderer = generator.renderer
    ident = torch.randn(
        samples, renderer.identity_dim, generator=torch_generator(generator.seed, "world/crop")
    )
    with torch.no_grad():
        landmarks = renderer.landmarks(FaceParams.neutral(ident)).mean(0, keepdim=True)
    return fit_similarity(landmarks, arcface_template(size)[None].to(landmarks))[0]


class LatentEmbedder(nn.Module):
    """The map from latents w [B, w_dim] to raw FR embeddings [B, D], differentiable in w."""

    def __init__(
        self,
        generator: nn.Module,  # mapping/synthesis/w_avg/z_dim/w_dim interface
        fr: FRModel,  # takes ArcFace-aligned RGB crops in [-1, 1]
        crop: torch.Tensor,  # [2, 3] pixel matrix, generator frame -> FR crop
    ) -> None:
        super().__init__()
        self.generator, self.fr = generator, fr
        self.register_buffer("crop_matrix", crop.float())
        self.crop_size = fr.spec.input_size
        self.requires_grad_(False)

    @property
    def w_dim(self) -> int:
        return self.generator.w_dim

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @property
    def w_avg(self) -> torch.Tensor:
        return self.generator.w_avg

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return self.generator.mapping(z, truncation_psi=truncation_psi)

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        matrices = self.crop_matrix.expand(images.shape[0], 2, 3)
        return warp_affine(images, matrices, self.crop_size)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, w_dim] -> raw embeddings [B, D] (normalise before taking angles)."""
        return self.fr(self.crop(self.generator.synthesis(w)))

    embed = forward


def angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise angles (radians) between rows of a [N, D] and b [M, D]: arccos(clamp(cos)).

    The clamp keeps arccos's gradient finite (it is infinite at cos = +-1).
    """
    a = nn.functional.normalize(a, dim=-1)
    b = nn.functional.normalize(b, dim=-1)
    return torch.arccos((a @ b.T).clamp(-1 + 1e-6, 1 - 1e-6))
