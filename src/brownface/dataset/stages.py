"""Stage entry point of the render rule."""

from __future__ import annotations

from pathlib import Path

from brownface.dataset.render import render_variations
from brownface.models.device import resolve_device
from brownface.models.generator import GeneratorSpec, load_generator


def render_dataset(
    generator: GeneratorSpec,  # reads noise_mode (truncation_psi unused)
    *,
    variations: str | Path,  # the dataset's variations.h5
    out_root: str | Path,  # its rendered/ directory
    image_size: int,  # the training recipe's input size
    device: str = "auto",
) -> None:
    """Every variation of a dataset as an aligned crop, plus index.csv."""
    gen = load_generator(generator, resolve_device(device))
    render_variations(gen, Path(variations), Path(out_root), image_size)
