"""e(w) = E(crop(G(w))): the generator, the crop to the FR network's input, and the FR network.

Every sampler sees the generator's latent space through this one differentiable map. The crop
is the generator's own (``fr_crop``): a fixed similarity from its aligned frame to the ArcFace
template (bilinear warp) or a fixed box resized bicubic (StyleGAN2's FFHQ frame), at the FR
network's input size, differentiable in w.
"""

from __future__ import annotations

import torch
from torch import nn

from brownface.distributed import Ranks
from brownface.models.fr import FRModel
from brownface.models.generator import GeneratorBase


class LatentEmbedder(nn.Module):
    """The map from latents w [B, w_dim] to raw FR embeddings [B, D], differentiable in w."""

    def __init__(
        self,
        generator: GeneratorBase,  # mapping/synthesis/w_avg/z_dim/w_dim/fr_crop interface
        fr: FRModel,  # takes ArcFace-aligned RGB crops in [-1, 1]
    ) -> None:
        super().__init__()
        self.generator, self.fr = generator, fr
        self.crop_size = fr.spec.input_size
        self.channels_last = False
        self.requires_grad_(False)

    def use_channels_last(self) -> LatentEmbedder:
        """Keep the FR network's weights and input NHWC: faster convolutions on tensor cores
        (and 4% on the force pass in oneDNN here). StyleGAN2's synthesis stays NCHW: its
        pointwise tail broadcasts NCHW noise, and NHWC made the pass 20% slower on a CPU."""
        self.fr.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

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
        return self.generator.fr_crop(images, self.crop_size)

    def forward(self, w: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        """w [B, w_dim] -> raw embeddings [B, D] (normalise before taking angles).

        ``checkpointing`` recomputes the synthesis network's activations in the backward pass
        (the generator's ``synthesis_checkpointed``) instead of keeping them.
        """
        synthesis = self.generator.synthesis_checkpointed if checkpointing else None
        images = (synthesis or self.generator.synthesis)(w)
        crops = self.crop(images)
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        return self.fr(crops)

    embed = forward


def embed_all(
    embedder: nn.Module, w: torch.Tensor, batch_size: int, ranks: Ranks | None = None
) -> torch.Tensor:
    """e(w) [N, D] for w [N, w_dim], detached, in passes of at most ``batch_size``; with
    ``ranks``, each rank embeds its slice (on the same batch boundaries) and all get all."""
    ranks = ranks or Ranks()
    start, stop = ranks.slice(w.shape[0], batch_size)
    with torch.no_grad():
        parts = [embedder(w[s : min(s + batch_size, stop)]) for s in range(start, stop, batch_size)]
    if ranks.size == 1:
        return torch.cat(parts) if parts else w.new_zeros(0, 0)
    if parts:
        local = torch.cat(parts)
    else:  # a rank without identities still sends [0, D]
        with torch.no_grad():
            local = w.new_zeros(0, embedder(embedder.w_avg[None]).shape[1])
    return ranks.gather(local, w.shape[0], batch_size)
