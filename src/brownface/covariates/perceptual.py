"""The perceptual term of GAN inversion: an LPIPS-style distance on VGG16 features.

The reference projector uses NVIDIA's ``vgg16.pkl`` (a pickle that runs code when loaded), so
brownface defines its own VGG16 feature network and reads plain weights files (torchvision or
LPIPS key names) with ``weights_only`` loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from brownface.errors import UserError

# ---------------------------------------------------------------------------------------------
# The perceptual term: an LPIPS-style distance on VGG16 features.

VGG16_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block; LPIPS taps the last ReLU of each
VGG16_WIDTHS = (64, 128, 256, 512, 512)
# torchvision's ``vgg16().features`` indices of the 13 convolutions, in order.
_TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# LPIPS input scaling: (x - shift) / scale for x in [-1, 1].
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


class Vgg16Features(nn.Module):
    """VGG16's convolutional trunk; returns the five ReLU outputs LPIPS compares."""

    def __init__(
        self,
        widths: Sequence[int] = VGG16_WIDTHS,  # channels per block (smaller only for tests)
    ) -> None:
        super().__init__()
        c_in = 3
        self.names: list[list[str]] = []
        for b, (n, width) in enumerate(zip(VGG16_BLOCKS, widths), start=1):
            self.names.append([])
            for i in range(1, n + 1):
                name = f"conv{b}_{i}"
                self.add_module(name, nn.Conv2d(c_in, width, 3, padding=1))
                self.names[-1].append(name)
                c_in = width
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for b, names in enumerate(self.names):
            if b:
                x = F.max_pool2d(x, 2)
            for name in names:
                x = F.relu(getattr(self, name)(x))
            taps.append(x)
        return taps


class PerceptualDistance(nn.Module):
    """d(a, b) = sum_l mean_hw sum_c lin_lc (f_l(a) - f_l(b))^2 with channel-normalised f_l."""

    def __init__(self, vgg: Vgg16Features, lin: Sequence[torch.Tensor] | None = None) -> None:
        super().__init__()
        self.vgg = vgg.requires_grad_(False).eval()
        for i, width in enumerate(vgg.widths):
            weight = torch.ones(width) if lin is None else torch.as_tensor(lin[i]).reshape(width)
            self.register_buffer(f"lin{i}", weight.float())
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images [B, 3, R, R] in [-1, 1] (area-downsampled to 256 if larger, as NVIDIA)."""
        if x.shape[-1] > 256:
            x = F.interpolate(x, size=(256, 256), mode="area")
        taps = self.vgg((x - self.shift) / self.scale)
        return [f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10) for f in taps]

    def distance(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """Per-image distance [B] between two feature lists."""
        terms = [
            ((fa - fb).square() * getattr(self, f"lin{i}").view(1, -1, 1, 1)).sum(1).mean((1, 2))
            for i, (fa, fb) in enumerate(zip(a, b))
        ]
        return torch.stack(terms).sum(0)


def load_perceptual(path: str | Path) -> PerceptualDistance:
    """Our VGG16 from a torch state dict (loaded with ``weights_only``, no code runs).

    Keys may be ours (``conv1_1.weight``, ``lin0``) or torchvision's ``features.N.weight`` /
    ``.bias`` (its ``classifier.*`` is ignored) with LPIPS's ``lin{k}.model.1.weight``; any other
    key, or a missing convolution, is an error. Without lin weights every channel weighs 1.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config covariates.projection.vgg16: {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{path}: not a torch state dict ({exc})") from None
    conv_names = [f"conv{b}_{i}" for b, n in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1)]
    ours: dict[str, torch.Tensor] = {}
    lin: dict[int, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("classifier."):
            continue
        tv = parts[0] == "features" and len(parts) == 3 and parts[1].isdigit()
        if tv and int(parts[1]) in _TORCHVISION_CONVS:
            ours[f"{conv_names[_TORCHVISION_CONVS.index(int(parts[1]))]}.{parts[2]}"] = value
        elif parts[0] in conv_names and len(parts) == 2:
            ours[key] = value
        elif parts[0].startswith("lin") and parts[0][3:].isdigit() and int(parts[0][3:]) < 5:
            lin[int(parts[0][3:])] = value.reshape(-1)
        else:
            raise UserError(f"{path}: unexpected key {key!r} in a VGG16 weights file")
    missing = [f"{n}.{p}" for n in conv_names for p in ("weight", "bias") if f"{n}.{p}" not in ours]
    if missing:
        raise UserError(f"{path}: VGG16 weights lack {missing[0]!r}")
    vgg = Vgg16Features(widths=[ours[f"conv{b}_1.weight"].shape[0] for b in range(1, 6)])
    try:
        vgg.load_state_dict(ours)
    except RuntimeError as exc:
        raise UserError(
            f"{path}: VGG16 weights of the wrong shape ({exc})".splitlines()[0]
        ) from None
    if lin and len(lin) != 5:
        raise UserError(f"{path}: has {len(lin)} of the 5 LPIPS lin weights")
    return PerceptualDistance(vgg, [lin[i] for i in range(5)] if lin else None)
