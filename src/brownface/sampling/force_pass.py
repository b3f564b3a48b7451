"""How the networks run when a sampler differentiates e(w): batches, ranks, precision, memory.

A force pass evaluates e(w) = E(crop(G(w))) on batches of latents with autograd recording, and
pushes a gradient with respect to the embeddings back to w. Every setting here changes how
fast it runs and how much memory it holds, and some change rounding:

* ``precision`` bf16 runs the generator and the FR network under ``torch.autocast`` (tensor
  cores on CUDA; also on the CPU, which the tests use). The embeddings are cast back to the
  latents' dtype before any angle is taken, so the energy, its gradient g = dU/de and the
  forces are computed and accumulated in float32; only the networks' own arithmetic is bf16.
* ``checkpointing`` recomputes the synthesis network's activations during the backward pass
  instead of keeping them (per synthesis block for StyleGAN2), so a batch holds only the
  blocks' inputs: larger batches fit. Recomputing the same operations gives the same bits.
* ``Ranks`` split the identities into contiguous slices aligned to the batch size, so every
  identity is computed in the same batch whatever the number of ranks.

:func:`saved_bytes_per_identity` is the memory estimate: the bytes autograd keeps for the
backward pass of one identity, counted with saved-tensor hooks (device-agnostic; CUDA's
``max_memory_allocated`` and the CPU's RSS are measured in ``benchmarks/langevin_real.py``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from brownface.distributed import Ranks
from brownface.sampling.embedder import LatentEmbedder

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ForcePass:
    """The batching, ranks and numerics of one sampler's differentiable passes."""

    batch_size: int  # identities per forward/backward pass
    block_size: int = 2048  # columns of each block of pairwise angles
    precision: str = "fp32"  # fp32 | bf16 (autocast of the networks)
    checkpointing: bool = False  # recompute the synthesis activations in the backward pass
    ranks: Ranks = field(default_factory=Ranks)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision}")

    def batches(self, n: int) -> list[tuple[int, int]]:
        """This rank's batches [start, stop) of the n identities, on global batch boundaries."""
        start, stop = self.ranks.slice(n, self.batch_size)
        return [(s, min(s + self.batch_size, stop)) for s in range(start, stop, self.batch_size)]

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Every rank's rows of an [n, ...] result, in identity order, on every rank."""
        return self.ranks.gather(local, n, self.batch_size)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def embed(self, embedder: nn.Module, w: torch.Tensor) -> torch.Tensor:
        """e(w) [B, D] in w's dtype, differentiable when grad mode is on."""
        with self.autocast(w.device):
            if self.checkpointing and torch.is_grad_enabled():
                e = embedder(w, checkpointing=True)
            else:
                e = embedder(w)  # any map w -> e (tests use other embedders)
        return e.to(w.dtype)


def prepared(embedder: nn.Module, channels_last: bool, compile: bool) -> nn.Module:
    """The embedder as the force pass calls it, changed in place: its FR network NHWC
    (``channels_last``), and the generator's synthesis and the FR network each compiled by
    ``torch.compile`` (``compile``; the crop between them stays eager, it reads its box as
    Python numbers). Only a LatentEmbedder has these parts; other maps are returned as they
    are."""
    if not isinstance(embedder, LatentEmbedder):
        return embedder
    if channels_last and not embedder.channels_last:
        embedder.use_channels_last()
    if compile and not getattr(embedder, "compiled", False):
        embedder.generator.synthesis = torch.compile(embedder.generator.synthesis)
        embedder.fr = torch.compile(embedder.fr)
        embedder.compiled = True
    return embedder


def saved_bytes_per_identity(
    embedder: nn.Module, fp: ForcePass, batch: int = 2, w: torch.Tensor | None = None
) -> int:
    """Bytes autograd saves for the backward pass of one identity's e(w), measured on a
    forward pass of ``batch`` latents (w, or w_avg repeated) under ``fp``'s settings.

    Tensors are counted once per storage; with checkpointing, the recomputed segments' own
    tensors are not saved (only the segments' inputs are kept), which is the point of it.
    """
    if w is None:
        w = embedder.w_avg[None].repeat(batch, 1)
    storages: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[(s.data_ptr(), s.nbytes())] = s.nbytes()
        return t

    x = w.detach().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fp.embed(embedder, x)
    return sum(storages.values()) // w.shape[0]


def check_memory(embedder: nn.Module, fp: ForcePass, device: torch.device) -> int:
    """Log the force pass's estimated memory per identity and, on CUDA, warn when a batch
    would not fit in the free memory, naming the largest batch that would. Returns the
    estimate in bytes."""
    per_identity = saved_bytes_per_identity(embedder, fp)
    mib = per_identity / 2**20
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        fits = int(0.8 * free // max(per_identity, 1))
        log.info(
            "force pass: ~%.0f MiB per identity for backward, batch %d of at most %d that fit "
            "in 80%% of %.1f GiB free",
            mib, fp.batch_size, fits, free / 2**30,
        )  # fmt: skip
        if fp.batch_size > fits:
            log.warning(
                "force pass: batch_size %d may not fit (about %d would); lower it or set "
                "activation_checkpointing: true",
                fp.batch_size, fits,
            )  # fmt: skip
    else:
        log.info("force pass: ~%.0f MiB per identity for backward", mib)
    return per_identity
