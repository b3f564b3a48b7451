"""Margin heads that own their class centres: ArcFace, CosFace and AdaFace.

Every head maps ``(embeddings [B, D] raw, labels [B] int64)`` to ``logits [B, C]``, scaled and
margin-adjusted, ready for cross-entropy. The embeddings are the backbone's raw output (not
normalised): AdaFace needs their norms, the other heads ignore them. Each head normalises the
embeddings and the columns of its ``kernel`` [D, C] (one class centre per column, the layout of
AdaFace's ``head.kernel``) and clamps the cosines to [-1 + eps, 1 - eps] with eps = 1e-3, so that
acos and sqrt keep finite gradients. Only the target column gets a margin; every other column is
``s * cos``. Gradients flow through the margin (no in-place ``no_grad`` trick).
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn
from torch.nn import functional as F

from brownface.errors import UserError

EPS = 1e-3  # cosine clamp, angle clamp and std guard, as in AdaFace


def _check_inputs(embeddings: torch.Tensor, labels: torch.Tensor, embedding_size: int) -> None:
    if embeddings.ndim != 2 or embeddings.shape[1] != embedding_size:
        raise ValueError(
            f"embeddings: expected shape [B, {embedding_size}], got {list(embeddings.shape)}"
        )
    if labels.shape != (embeddings.shape[0],):
        raise ValueError(
            f"labels: expected shape [{embeddings.shape[0]}] (one per embedding), "
            f"got {list(labels.shape)}"
        )


class MarginHead(nn.Module):
    """Class centres plus the shared cosine computation; subclasses adjust the target cosine."""

    def __init__(
        self,
        embedding_size: int,  # D, width of the backbone's embedding
        num_classes: int,  # C, number of identities
        s: float,  # logit scale
        m: float,  # margin (its meaning depends on the head)
    ) -> None:
        super().__init__()
        self.embedding_size, self.num_classes = embedding_size, num_classes
        self.s, self.m = float(s), float(m)
        # Uniform in [-1, 1], then every column rescaled to unit norm (renorm caps each column's
        # norm at 1e-5, the multiply brings it back to 1).
        kernel = torch.empty(embedding_size, num_classes).uniform_(-1, 1)
        self.kernel = nn.Parameter(kernel.renorm_(2, 1, 1e-5).mul_(1e5))  # [D, C]

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(embedding, centre) for every class, clamped to [-1 + EPS, 1 - EPS]: [B, C]."""
        emb = F.normalize(embeddings, dim=1)
        kernel = F.normalize(self.kernel, dim=0)
        return (emb @ kernel).clamp(-1 + EPS, 1 - EPS)

    def target_cosine(self, cos_y: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """The margin-adjusted target cosine [B, 1] from the plain one [B, 1]."""
        raise NotImplementedError(f"{type(self).__name__} does not define its margin")

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_inputs(embeddings, labels, self.embedding_size)
        # The margins need full precision near cos = 1: run in the kernel's dtype, never autocast.
        with torch.autocast(embeddings.device.type, enabled=False):
            embeddings = embeddings.to(self.kernel.dtype)
            cos = self.cosine(embeddings)  # [B, C]
            index = labels.long()[:, None]  # [B, 1]
            target = self.target_cosine(cos.gather(1, index), embeddings)  # [B, 1]
            return self.s * cos.scatter(1, index, target)  # out of place: gradient reaches both

    def extra_repr(self) -> str:
        return (
            f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, "
            f"s={self.s}, m={self.m}"
        )


class ArcFace(MarginHead):
    """Additive angular margin: target logit s * cos(theta_y + m).

    Where theta_y + m would pass pi (cos_y <= cos(pi - m)), cos(theta + m) stops decreasing, so
    the target falls back to the linear ``cos_y - m * sin(pi - m)``: insightface arcface_torch's
    ``CombinedMarginLoss`` with ``easy_margin=False`` (``where(cos > cos(pi - m), cos(theta + m),
    cos - m * sin(pi - m))``).
    """

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__(embedding_size, num_classes, s, m)
        self.threshold = math.cos(math.pi - self.m)  # cos_y at which theta_y + m reaches pi
        self.fallback = math.sin(math.pi - self.m) * self.m  # linear margin past the threshold

    def target_cosine(self, cos_y: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        sin_y = (1 - cos_y * cos_y).sqrt()  # > 0: cos_y is clamped away from +-1
        shifted = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)  # cos(theta_y + m)
        return torch.where(cos_y > self.threshold, shifted, cos_y - self.fallback)


class CosFace(MarginHead):
    """Additive cosine margin: target logit s * (cos_y - m)."""

    def __init__(self, embedding_size: int, num_classes: int, s: float = 64.0, m: float = 0.35):
        super().__init__(embedding_size, num_classes, s, m)

    def target_cosine(self, cos_y: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        return cos_y - self.m


class AdaFace(MarginHead):
    """Adaptive margin from the feature norm (Kim et al. 2022): s * (cos(theta_y + g_ang) - g_add).

    With norm = clip(||f||, 0.001, 100) (detached), the margin scaler is
    z = clip(h * (norm - batch_mean) / (batch_std + EPS), -1, 1), g_ang = -m * z, g_add = m + m * z,
    and the shifted target angle is clamped to [EPS, pi - EPS]. ``batch_mean`` / ``batch_std`` are
    EMAs of the batch mean and the (unbiased, ``torch.std`` default, as AdaFace) batch std of the
    norms: ``ema = t_alpha * batch_value + (1 - t_alpha) * ema``. They are updated before z is
    computed, so the current batch already counts, and only in training mode (AdaFace updates
    them on every forward pass; here evaluation passes leave them alone). A batch of one has no
    std: its update is skipped. Under DDP each rank keeps its own EMAs from its own sub-batch.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        m: float = 0.4,  # margin
        h: float = 0.333,  # how strongly the norm moves the margin (0 = CosFace-like fixed)
        s: float = 64.0,  # logit scale
        t_alpha: float = 0.01,  # EMA weight of the current batch's norm statistics
    ) -> None:
        super().__init__(embedding_size, num_classes, s, m)
        self.h, self.t_alpha = float(h), float(t_alpha)
        self.register_buffer("batch_mean", torch.full((1,), 20.0))
        self.register_buffer("batch_std", torch.full((1,), 100.0))

    @torch.no_grad()
    def _update_norm_stats(self, norms: torch.Tensor) -> None:
        if norms.numel() < 2:
            return
        alpha = self.t_alpha
        self.batch_mean.mul_(1 - alpha).add_(alpha * norms.mean())
        self.batch_std.mul_(1 - alpha).add_(alpha * norms.std())

    def margin_scaler(self, embeddings: torch.Tensor) -> torch.Tensor:
        """z in [-1, 1] per embedding [B, 1]; updates the EMAs first when training."""
        norms = embeddings.detach().norm(dim=1, keepdim=True).clamp(0.001, 100)  # [B, 1]
        if self.training:
            self._update_norm_stats(norms)
        z = (norms - self.batch_mean) / (self.batch_std + EPS)
        return (z * self.h).clamp(-1, 1)

    def target_cosine(self, cos_y: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        z = self.margin_scaler(embeddings)
        g_angular = -self.m * z
        g_additive = self.m + self.m * z
        theta = (cos_y.acos() + g_angular).clamp(EPS, math.pi - EPS)
        return theta.cos() - g_additive

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, h={self.h}, t_alpha={self.t_alpha}"


HEADS = {"arcface": ArcFace, "cosface": CosFace, "adaface": AdaFace}


def build_head(name: str, embedding_size: int, num_classes: int, **kwargs) -> MarginHead:
    """The head called ``name`` (arcface | cosface | adaface); kwargs override its defaults."""
    if name not in HEADS:
        raise UserError(f"unknown margin head {name!r}: expected one of {', '.join(HEADS)}")
    cls = HEADS[name]
    known = [
        p for p in inspect.signature(cls).parameters if p not in ("embedding_size", "num_classes")
    ]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise UserError(
            f"margin head {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(known)}"
        )
    return cls(embedding_size, num_classes, **kwargs)
