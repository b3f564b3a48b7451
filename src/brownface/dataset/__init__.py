"""Rendering latents to aligned face images (the dataset layout: images/ + index.csv), sharded
and merged, plus each dataset's card and contact sheet."""
