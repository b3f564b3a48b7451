"""Generators, face-recognition backbones, checkpoint loaders and face crops."""
