"""Rendering latents to aligned face images: the dataset layout (images/ + index.csv)."""
