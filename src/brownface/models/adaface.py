"""AdaFace IR backbones in the layout of mk-minchul/AdaFace ``net.py``.

Submodule names follow AdaFace exactly (``input_layer``, ``body.{u}.res_layer``,
``body.{u}.shortcut_layer``, ``output_layer``), so the ``model.*`` weights of a released
AdaFace ``.ckpt`` load with ``strict=True``; see ``brownface.models.checkpoints``.

Input: aligned **BGR** crops (unlike insightface, which is RGB) as float NCHW in [-1, 1],
i.e. ``(bgr / 255 - 0.5) / 0.5``. Flip channels with ``x.flip(1)`` when the images are RGB.
Output: ``(embedding / ||embedding||, ||embedding||)``, the unit embedding [B, 512] and its
norm [B, 1]; AdaFace's margin and its flip fusion both use the norm.

Only the 112x112 and 224x224 crops of the original are supported. The bottleneck variants
(ir_152, ir_200, 2048 channels) are not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brownface.errors import UserError

# Units per stage of each AdaFace IR network (all basic units, widths 64/128/256/512).
ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {
    "ir_18": (2, 2, 2, 2),
    "ir_34": (3, 4, 6, 3),
    "ir_50": (3, 4, 14, 3),
    "ir_101": (3, 13, 30, 3),
}
WIDTHS = (64, 128, 256, 512)
INPUT_SIZES = (112, 224)  # the original asserts one of these
EMBEDDING_SIZE = 512
DROPOUT = 0.4  # fixed in the original's output layer; inactive in eval mode

# The notes do not give BatchNorm settings and AdaFace's net.py passes none, so every BN below
# uses PyTorch's defaults (eps 1e-5, momentum 0.1), which is what the original runs with.


# ----------------------------------------------------------------------------------------------


class BasicBlockIR(nn.Module):
    """IR unit: BN -> conv -> BN -> PReLU -> strided conv -> BN, plus a shortcut.

    The shortcut subsamples with a 1x1 max-pool of the unit's stride when the width is kept
    (so stage 1's first unit, 64 -> 64, just drops every other pixel), and is a strided
    1x1 conv + BN when the width changes. This differs from insightface, which always uses the
    conv shortcut in the first unit of a stage.
    """

    def __init__(
        self,
        in_channels: int,  # channels coming in
        depth: int,  # channels going out (AdaFace's name)
        stride: int,  # stride of the second conv and of the shortcut; 1 = same size
    ) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride=stride, bias=False),
                nn.BatchNorm2d(depth),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


# ----------------------------------------------------------------------------------------------


class AdaFaceIR(nn.Module):
    """AdaFace's IR backbone: 3x3 stem, a flat ``body`` of units, BN/dropout/FC/BN output layer.

    Units are numbered continuously across the 4 stages (``body.0`` .. ``body.{n-1}``); the
    first unit of each stage has stride 2, so a 112 crop ends at 7x7 and a 224 crop at 14x14.
    """

    arch = "adaface_ir"  # name used in messages; the factory sets the architecture's name

    def __init__(
        self,
        units: Sequence[int],  # units in each of the 4 stages, e.g. (3, 4, 14, 3) = ir_50
        input_size: int = 112,  # side of the square input crop: 112 or 224
    ) -> None:
        super().__init__()
        if len(units) != 4:
            raise UserError(f"AdaFace IR: needs 4 stages, got units={units}")
        if input_size not in INPUT_SIZES:
            raise UserError(f"AdaFace IR input_size: must be 112 or 224, got {input_size}")
        self.units, self.input_size = tuple(units), input_size

        self.input_layer = nn.Sequential(
            nn.Conv2d(3, WIDTHS[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(WIDTHS[0]),
            nn.PReLU(WIDTHS[0]),
        )
        body: list[nn.Module] = []
        in_channels = WIDTHS[0]
        for count, depth in zip(units, WIDTHS):
            body.append(BasicBlockIR(in_channels, depth, stride=2))
            body += [BasicBlockIR(depth, depth, stride=1) for _ in range(1, count)]
            in_channels = depth
        self.body = nn.Sequential(*body)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(WIDTHS[-1]),
            nn.Dropout(DROPOUT),
            nn.Flatten(),
            nn.Linear(WIDTHS[-1] * side * side, EMBEDDING_SIZE),
            nn.BatchNorm1d(EMBEDDING_SIZE, affine=False),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """As AdaFace: Kaiming (fan_out) for convs and the FC layer, zero biases, identity BNs."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BGR [B, 3, size, size] in [-1, 1] -> (unit embeddings [B, 512], norms [B, 1])."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.input_size, self.input_size):
            raise ValueError(
                f"AdaFace IR input must be [B, 3, {self.input_size}, {self.input_size}], "
                f"got {list(x.shape)}"
            )
        x = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)  # [B, 1]
        return x / norm, norm


# ----------------------------------------------------------------------------------------------


def adaface_ir(name: str, input_size: int = 112) -> AdaFaceIR:
    """The named AdaFace IR network ("ir_18", "ir_34", "ir_50" or "ir_101")."""
    if name not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        raise UserError(f"unknown AdaFace architecture {name!r}; known: {known}")
    model = AdaFaceIR(units=ARCHITECTURES[name], input_size=input_size)
    model.arch = name
    return model
