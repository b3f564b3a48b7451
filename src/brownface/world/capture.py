"""Photographing world identities: nuisance presets and renders framed like real datasets.

Benchmark sets hold ArcFace-aligned crops (112x112, 5 landmarks on the insightface template);
"in the wild" sets hold loose crops with the face off-centre. Instead of warping a rendered image
(which blurs), we fit the similarity that takes the face's own landmarks onto the template and
render directly in that framing through the renderer's in-plane transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from brownface.models.align import arcface_template, fit_similarity
from brownface.world.renderer import EXPRESSIONS, FaceParams, FaceRenderer


@dataclass(frozen=True)
class NuisancePreset:
    """Ranges of pose, light and expression for one kind of photograph."""

    yaw_std: float  # degrees, normal, clipped at yaw_max
    yaw_max: float
    pitch_std: float  # degrees, normal, clipped at 30
    light_azimuth_max: float  # degrees, uniform in +-max
    strength: tuple[float, float]  # light strength, uniform
    ambient: tuple[float, float]  # ambient light, uniform
    expression_prob: float  # chance that a face shows an expression
    expression_max: float  # its intensity is uniform in [0, max]
    yaw_min: float = 0.0  # |yaw| at least this (profile sets)


PRESETS: dict[str, NuisancePreset] = {
    # LFW: mostly frontal press photos, mild pose, light and expression.
    "lfw": NuisancePreset(15, 45, 6, 50, (0.3, 0.7), (0.35, 0.6), 0.4, 0.6),
    # CFP-FP: frontal and full-profile views.
    "frontal": NuisancePreset(5, 10, 4, 30, (0.3, 0.6), (0.4, 0.6), 0.3, 0.4),
    "profile": NuisancePreset(8, 90, 5, 30, (0.3, 0.6), (0.4, 0.6), 0.3, 0.4, yaw_min=70),
    # IJB / training: anything goes.
    "wild": NuisancePreset(35, 90, 12, 90, (0.1, 0.9), (0.2, 0.7), 0.6, 1.0),
}


def sample_nuisance(gen: torch.Generator, n: int, preset: str) -> dict[str, torch.Tensor]:
    """Draw n nuisance settings from a preset with a seeded generator (CPU)."""
    cfg = PRESETS[preset]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*(shape or (n,)), generator=gen)

    yaw = (torch.randn(n, generator=gen) * cfg.yaw_std).clamp(-cfg.yaw_max, cfg.yaw_max)
    if cfg.yaw_min > 0:
        sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
        yaw = sign * (cfg.yaw_min + yaw.abs()).clamp(max=cfg.yaw_max)
    pitch = (torch.randn(n, generator=gen) * cfg.pitch_std).clamp(-30, 30)
    expressive = (torch.rand(n, generator=gen) < cfg.expression_prob).float()
    which = torch.randint(len(EXPRESSIONS), (n,), generator=gen)
    expression = torch.zeros(n, len(EXPRESSIONS))
    expression[torch.arange(n), which] = expressive * uniform(0, cfg.expression_max)
    return dict(
        yaw=yaw,
        pitch=pitch,
        light_azimuth=uniform(-cfg.light_azimuth_max, cfg.light_azimuth_max),
        light_strength=uniform(*cfg.strength),
        ambient=uniform(*cfg.ambient),
        expression=expression,
        background=uniform(0.25, 0.85, n, 3),
        background_gradient=uniform(-0.15, 0.15),
        light_tint=uniform(-0.6, 0.6),
        hair_phase=uniform(-3.14159, 3.14159),
    )


def arcface_framing(renderer: FaceRenderer, params: FaceParams, size: int) -> FaceParams:
    """Set roll/scale/shift so the 5 landmarks land on the ArcFace template (least squares)."""
    canonical = params.replace(
        roll=torch.zeros_like(params.roll),
        scale=torch.ones_like(params.scale),
        shift=torch.zeros_like(params.shift),
    )
    res = renderer.resolution
    src = (renderer.landmarks(canonical) + 0.5) / (res / 2) - 1  # normalised coordinates
    dst = (arcface_template(size).to(src) + 0.5) / (size / 2) - 1
    m = fit_similarity(src, dst[None])
    a, b = m[:, 0, 0], m[:, 1, 0]
    return canonical.replace(
        roll=torch.rad2deg(torch.atan2(b, a)), scale=torch.hypot(a, b), shift=m[:, :, 2]
    )


def render_batched(
    renderer: FaceRenderer, params: FaceParams, size: int, batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render any number of faces in batches (no gradients); returns images and landmarks."""
    images, landmarks = [], []
    with torch.inference_mode():
        for start in range(0, params.identity.shape[0], batch):
            img, lm = renderer(params[start : start + batch], resolution=size)
            images.append(img)
            landmarks.append(lm)
    return torch.cat(images), torch.cat(landmarks)
