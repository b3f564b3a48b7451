"""The procedural face world: renderer, world generator and data sets in the real formats."""

from brownface.world.generator import WorldGenerator
from brownface.world.renderer import EXPRESSIONS, FaceParams, FaceRenderer

__all__ = ["EXPRESSIONS", "FaceParams", "FaceRenderer", "WorldGenerator"]
