"""A contact sheet of a rendered dataset, like the paper's first figure: one row per identity,
its reference then its first variations, read from the dataset's own image files (so the sheet
shows exactly what a trainer reads, JPEG artefacts included)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from brownface.dataset.layout import read_index
from brownface.store import atomic_path

LABEL_WIDTH = 72  # left margin for the identity ids, pixels
HEADER_HEIGHT = 24  # top margin for the column labels
GAP = 4  # white space between tiles
FONT_SIZE = 14
BLACK = (0, 0, 0)


def sheet_size(rows: int, columns: int, tile: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of rows x columns tiles."""
    width = LABEL_WIDTH + columns * tile + (columns - 1) * GAP
    return width, HEADER_HEIGHT + rows * tile + (rows - 1) * GAP


def contact_sheet(
    root: str | Path,  # a dataset root (images/ + index.csv)
    out: str | Path,  # the PNG to write
    identities: int = 8,  # rows: the first identities, in id order
    variations: int = 8,  # columns after the reference: its first variations
    tile: int = 128,  # side of each face, pixels (resized with Lanczos when it differs)
    dpi: int = 300,  # recorded in the PNG, for print: 128 px tiles are ~11 mm
) -> tuple[int, int]:
    """Write the sheet (deterministic PNG bytes); return its (width, height)."""
    index = read_index(root)
    by_identity: dict[int, list[tuple[str, str]]] = {}
    for rel, identity, label in zip(index.paths, index.identities, index.labels, strict=True):
        by_identity.setdefault(int(identity), []).append((label, rel))
    people = sorted(by_identity)[:identities]
    grid = [sorted(by_identity[p])[: 1 + variations] for p in people]
    columns = max(len(row) for row in grid)
    width, height = sheet_size(len(grid), columns, tile)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=FONT_SIZE)
    x0 = [LABEL_WIDTH + c * (tile + GAP) for c in range(columns)]
    for c, x in enumerate(x0):
        draw.text((x + 2, 4), "reference" if c == 0 else f"variation {c}", fill=BLACK, font=font)
    for r, (person, row) in enumerate(zip(people, grid, strict=True)):
        y = HEADER_HEIGHT + r * (tile + GAP)
        draw.text((4, y + tile // 2 - FONT_SIZE // 2), f"{person:06d}", fill=BLACK, font=font)
        for c, (_, rel) in enumerate(row):
            with Image.open(index.root / rel) as im:
                face = im.convert("RGB")
            if face.size != (tile, tile):
                face = face.resize((tile, tile), Image.Resampling.LANCZOS)
            sheet.paste(face, (x0[c], y))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", dpi=(dpi, dpi))
    return sheet.size
