"""A stand-in generator kind: what adding a generator to brownface takes.

This module and one line in ``brownface.models.generator.GENERATOR_KINDS`` (the tests add it
with monkeypatch) are all it needs: every stage then samples, renders and projects with it.
The network is a fixed random linear map of w to a 16x16 image, squashed to [-1, 1].
"""

import torch

from brownface.models.align import arcface_template
from brownface.models.generator import GeneratorBase, GeneratorSpec


def spec_options(config: dict) -> dict:
    return {"w_dim": 8}  # a real kind reads its keys from the config


def build(spec: GeneratorSpec) -> "LinearGenerator":
    return LinearGenerator(spec)


class LinearGenerator(GeneratorBase):
    img_resolution, num_ws = 16, 1

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self.spec, self.z_dim = spec, spec.options["w_dim"]
        self.w_dim = spec.options["w_dim"]
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("weight", torch.randn(3 * 16 * 16, self.w_dim, generator=gen))
        self.register_buffer("w_avg", torch.zeros(self.w_dim))

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return self.w_avg + truncation_psi * (z - self.w_avg)

    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.check_w(w) @ self.weight.T).reshape(-1, 3, 16, 16)

    def frame_landmarks(self) -> torch.Tensor:
        return arcface_template(16)  # its frame is the ArcFace crop itself
