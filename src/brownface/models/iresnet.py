"""iResNet face-recognition backbones in the insightface ``arcface_torch`` layout.

Submodule names follow insightface exactly, so a released ``backbone.pth`` (a bare state dict)
loads with ``strict=True``; see ``brownface.models.checkpoints``. The same class, built narrower
(``widths``) and for smaller crops (``input_size``), is the reference network of the demo world.

Input: aligned RGB crops as float NCHW in [-1, 1], i.e. ``(x / 255 - 0.5) / 0.5``.
Output: the raw (un-normalised) embedding; normalise it before taking angles.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brownface.errors import UserError

BN_EPS = 1e-5  # insightface passes eps=1e-05 to every BatchNorm; momentum stays at 0.1

# Blocks per stage of each insightface architecture.
ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2),
    "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3),
    "iresnet100": (3, 13, 30, 3),
    "iresnet200": (6, 26, 60, 6),
}
ALIASES = {f"r{name[len('iresnet') :]}": name for name in ARCHITECTURES}  # insightface get_model


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


# ----------------------------------------------------------------------------------------------


class IBasicBlock(nn.Module):
    """Pre-activation residual block: BN -> conv -> BN -> PReLU -> strided conv -> BN, + shortcut.

    There is no activation after the addition (the "improved" residual of iResNet).
    """

    def __init__(
        self,
        in_channels: int,  # channels coming in
        channels: int,  # channels going out (both convs)
        stride: int = 1,  # stride of the second conv and of the shortcut; 1 = same size
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        # insightface projects whenever the shape changes; every stage starts with stride 2,
        # so each stage's first block (layer1 too, 64 -> 64) has this conv1x1 + BN shortcut.
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels, eps=BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


def _stage(in_channels: int, channels: int, blocks: int) -> nn.Sequential:
    """One stage: a stride-2 block that changes the width, then ``blocks - 1`` plain blocks."""
    first = IBasicBlock(in_channels, channels, stride=2)
    return nn.Sequential(first, *[IBasicBlock(channels, channels) for _ in range(1, blocks)])


# ----------------------------------------------------------------------------------------------


class IResNet(nn.Module):
    """The insightface iResNet: 3x3 stem, four stride-2 stages, BN -> dropout -> FC -> BN head.

    The spatial size halves in each stage (112 -> 56 -> 28 -> 14 -> 7), so the FC layer sees
    ``widths[-1] * (input_size / 16) ** 2`` features. ``features`` is a BatchNorm1d whose scale
    is frozen at 1 (insightface trains only its shift and running statistics).
    """

    arch = "iresnet"  # name used in messages; the factory sets the architecture's name

    def __init__(
        self,
        layers: Sequence[int],  # blocks in each of the 4 stages, e.g. (3, 4, 14, 3) = iresnet50
        widths: Sequence[int] = (64, 128, 256, 512),  # channels of the 4 stages; stem = widths[0]
        input_size: int = 112,  # side of the square input crop; must be divisible by 16
        num_features: int = 512,  # embedding size
        dropout: float = 0.0,  # dropout before the FC layer; 0 = none (insightface default)
        fp16: bool = False,  # run the conv trunk under CUDA autocast; ignored on CPU
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise UserError(f"iResNet: needs 4 stages, got layers={layers} widths={widths}")
        if input_size <= 0 or input_size % 16 != 0:
            raise UserError(f"iResNet input_size: must be a multiple of 16, got {input_size}")
        self.layers, self.widths = tuple(layers), tuple(widths)
        self.input_size, self.num_features, self.fp16 = input_size, num_features, fp16

        # Stem.
        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0], eps=BN_EPS)
        self.prelu = nn.PReLU(widths[0])

        # Stages, each starting with stride 2.
        self.layer1 = _stage(widths[0], widths[0], layers[0])
        self.layer2 = _stage(widths[0], widths[1], layers[1])
        self.layer3 = _stage(widths[1], widths[2], layers[2])
        self.layer4 = _stage(widths[2], widths[3], layers[3])

        # Head.
        side = input_size // 16
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(widths[-1] * side * side, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        """He init for convs, identity BNs, frozen unit scale on ``features``.

        insightface itself draws conv weights from N(0, 0.1); we use Kaiming (fan_out) because
        it keeps activations at unit scale for any width, which matters for the narrow world
        models. The FC layer keeps PyTorch's default, as in insightface. Loaded checkpoints
        overwrite all of this.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.features.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [B, 3, input_size, input_size] in [-1, 1] -> raw embeddings [B, num_features]."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.input_size, self.input_size):
            raise ValueError(
                f"iResNet input must be [B, 3, {self.input_size}, {self.input_size}], "
                f"got {list(x.shape)}"
            )
        with torch.autocast("cuda", enabled=self.fp16 and x.is_cuda):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.dropout(torch.flatten(self.bn2(x), 1))
        # The FC layer and the embedding BN always run in fp32, as in insightface.
        return self.features(self.fc(x.to(self.fc.weight.dtype)))


# ----------------------------------------------------------------------------------------------


def iresnet(name: str, **kwargs) -> IResNet:
    """The named insightface architecture ("iresnet50" or its alias "r50"); kwargs go to IResNet."""
    arch = ALIASES.get(name, name)
    if arch not in ARCHITECTURES:
        known = ", ".join([*ARCHITECTURES, *ALIASES])
        raise UserError(f"unknown iResNet architecture {name!r}; known: {known}")
    model = IResNet(layers=ARCHITECTURES[arch], **kwargs)
    model.arch = arch
    return model
