"""A contact sheet of the world: identities x (pose, light, expression), to see it at a glance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from brownface.imageio import save_image, to_uint8
from brownface.seeding import torch_generator
from brownface.world.renderer import EXPRESSIONS, FaceParams, FaceRenderer

# (column label, overrides of the neutral frontal face)
COLUMNS: tuple[tuple[str, dict[str, float | tuple[int, float]]], ...] = (
    ("frontal", {}),
    ("yaw -90", {"yaw": -90.0}),
    ("yaw -45", {"yaw": -45.0}),
    ("yaw +45", {"yaw": 45.0}),
    ("yaw +90", {"yaw": 90.0}),
    ("pitch +25", {"pitch": 25.0}),
    ("pitch -25", {"pitch": -25.0}),
    ("light left", {"light_azimuth": -75.0, "light_strength": 0.9, "ambient": 0.25}),
    ("light right", {"light_azimuth": 75.0, "light_strength": 0.9, "ambient": 0.25}),
    ("no flash", {"light_strength": 0.0, "ambient": 0.6}),
    *((name, {"expression": (i, 1.0)}) for i, name in enumerate(EXPRESSIONS)),
)


def _params(identity: torch.Tensor, overrides: dict) -> FaceParams:
    n = identity.shape[0]
    values = {}
    for key, value in overrides.items():
        if key == "expression":
            expression = torch.zeros(n, len(EXPRESSIONS))
            expression[:, value[0]] = value[1]
            values[key] = expression
        else:
            values[key] = torch.full((n,), float(value))
    return FaceParams.neutral(identity, **values)


def world_sheet(
    renderer: FaceRenderer, seed: int, out: Path, identities: int = 8, size: int = 96
) -> None:
    """Write a PNG grid: one row per identity, one labelled column per condition."""
    ident = torch.randn(
        identities, renderer.identity_dim, generator=torch_generator(seed, "world/sheet")
    )
    label_h = 14
    sheet = np.full((label_h + identities * size, len(COLUMNS) * size, 3), 255, np.uint8)
    with torch.inference_mode():
        for c, (_, overrides) in enumerate(COLUMNS):
            images, _ = renderer(_params(ident, overrides), resolution=size)
            for r, tile in enumerate(to_uint8(images)):
                sheet[label_h + r * size : label_h + (r + 1) * size, c * size : (c + 1) * size] = (
                    tile
                )
    pil = Image.fromarray(sheet)
    draw = ImageDraw.Draw(pil)
    for c, (label, _) in enumerate(COLUMNS):
        draw.text((c * size + 3, 1), label, fill=(0, 0, 0))
    save_image(out, np.asarray(pil))
