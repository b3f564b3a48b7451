"""The closest synthetic-real pairs as an image sheet: each pair the synthetic face (left)
beside the real one (right), the angle between their embeddings and both names under them.

What a reviewer of a dataset's leakage looks at first: whether the closest pairs are the same
person. Both faces are shown as the FR saw them (the generator's FR crop of a frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from brownface.store import atomic_path

PAIRS_PER_ROW = 5
GAP = 8  # white space between pairs, pixels
CAPTION_HEIGHT = 34  # two lines of text under each pair
FONT_SIZE = 12
BLACK = (0, 0, 0)


@dataclass(frozen=True)
class FacePair:
    synthetic: np.ndarray  # uint8 [H, W, 3]
    real: np.ndarray  # uint8 [H, W, 3]
    degrees: float  # angle between their embeddings
    synthetic_name: str
    real_name: str


def _tile(image: np.ndarray, tile: int) -> Image.Image:
    face = Image.fromarray(image).convert("RGB")
    if face.size != (tile, tile):
        face = face.resize((tile, tile), Image.Resampling.LANCZOS)
    return face


def pairs_sheet(
    pairs: Sequence[FacePair], out: str | Path, tile: int = 96, title: str = ""
) -> tuple[int, int]:
    """Write the sheet (deterministic PNG bytes); returns its (width, height). No pairs gives
    a sheet that says so, so the report always has its figure."""
    columns = max(1, min(PAIRS_PER_ROW, len(pairs)))
    rows = max(1, -(-len(pairs) // columns))
    header = FONT_SIZE + 10 if title else 0
    cell_w, cell_h = 2 * tile, tile + CAPTION_HEIGHT
    width = columns * cell_w + (columns + 1) * GAP
    height = header + rows * cell_h + (rows + 1) * GAP
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_SIZE)
    if title:
        draw.text((GAP, 4), title, fill=BLACK, font=font)
    if not pairs:
        draw.text((GAP, header + GAP), "no pairs", fill=BLACK, font=font)
    for n, pair in enumerate(pairs):
        r, c = divmod(n, columns)
        x = GAP + c * (cell_w + GAP)
        y = header + GAP + r * (cell_h + GAP)
        sheet.paste(_tile(pair.synthetic, tile), (x, y))
        sheet.paste(_tile(pair.real, tile), (x + tile, y))
        draw.text((x + 2, y + tile + 2), f"{pair.degrees:.1f}°", fill=BLACK, font=font)
        names = f"{pair.synthetic_name} | {pair.real_name}"
        draw.text((x + 2, y + tile + 2 + FONT_SIZE + 3), names[:40], fill=BLACK, font=font)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return sheet.size
