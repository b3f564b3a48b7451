"""The procedural face world: renderer, world generator and data sets in the real formats."""
