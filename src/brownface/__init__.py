"""brownface: synthetic face datasets from Brownian identity diffusion."""

__version__ = "0.1.0"
