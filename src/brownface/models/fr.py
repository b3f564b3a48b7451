"""Face-recognition models behind one interface: a spec, a wrapper with ``embed``, and files.

An ``FRSpec`` says everything needed to use a network: its kind and architecture, checkpoint,
input crop size, colour order and embedding size. ``FRModel`` takes ArcFace-aligned RGB crops in
[-1, 1] of any size, resizes them to the network's input, converts colour order (AdaFace wants
BGR) and returns raw embeddings; distances are angles between them.

Kinds: ``iresnet`` (insightface ``backbone.pth``), ``adaface`` (AdaFace Lightning ``.ckpt``),
``brownface`` (a ``model.pt`` written by our trainer: backbone state dict + JSON spec).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from brownface.errors import UserError
from brownface.models.adaface import adaface_ir
from brownface.models.checkpoints import (
    load_adaface_state_dict,
    load_insightface_backbone,
    load_strict,
    load_torch_file,
    sha256_file,
)
from brownface.models.iresnet import ARCHITECTURES, IResNet, iresnet
from brownface.store import atomic_path

MODEL_FORMAT = "brownface/fr-model"
MODEL_VERSION = 1


@dataclass(frozen=True)
class FRSpec:
    kind: str = "iresnet"  # iresnet | adaface | brownface
    arch: str = "iresnet50"  # iresnet18..200, ir_18..ir_101, or "iresnet" with explicit layers
    checkpoint: str | None = None  # weights file; None = random init (training)
    input_size: int = 112  # side of the network's aligned crop
    colour: str = "rgb"  # channel order the network expects: rgb (insightface) or bgr (AdaFace)
    embedding_size: int = 512
    layers: tuple[int, ...] | None = None  # iResNet blocks per stage (overrides arch)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # iResNet channels per stage
    dropout: float = 0.0
    extra: dict = field(default_factory=dict)  # free-form provenance (e.g. training data)

    @classmethod
    def from_dict(cls, data: dict) -> FRSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"FR model spec: unknown key {unknown[0]!r}; expected {', '.join(sorted(known))}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    @classmethod
    def from_recipe(cls, recipe) -> FRSpec:
        return cls(
            kind="iresnet",
            arch=recipe.arch,
            input_size=recipe.input_size,
            embedding_size=recipe.embedding_size,
            layers=recipe.layers,
            widths=tuple(recipe.widths),
            dropout=recipe.dropout,
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def build_backbone(spec: FRSpec) -> nn.Module:
    """The randomly initialised network a spec describes."""
    if spec.kind in ("iresnet", "brownface"):
        kwargs = dict(
            widths=spec.widths,
            input_size=spec.input_size,
            num_features=spec.embedding_size,
            dropout=spec.dropout,
        )
        if spec.layers is not None:
            return IResNet(layers=spec.layers, **kwargs)
        return iresnet(spec.arch, **kwargs)
    if spec.kind == "adaface":
        if spec.embedding_size != 512:
            raise UserError("FR model spec: AdaFace networks have embedding_size 512")
        return adaface_ir(spec.arch, input_size=spec.input_size)
    raise UserError(
        f"FR model spec kind: expected iresnet, adaface or brownface, got {spec.kind!r}"
    )


class FRModel(nn.Module):
    """A backbone plus its input convention; ``forward``/``embed`` give raw embeddings."""

    def __init__(self, backbone: nn.Module, spec: FRSpec) -> None:
        super().__init__()
        if spec.colour not in ("rgb", "bgr"):
            raise UserError(f"FR model spec colour: expected rgb or bgr, got {spec.colour!r}")
        self.backbone, self.spec = backbone, spec

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """ArcFace-aligned RGB crops [B, 3, H, W] in [-1, 1] -> raw embeddings [B, D]."""
        size = self.spec.input_size
        if images.shape[-2:] != (size, size):
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )
        if self.spec.colour == "bgr":
            images = images.flip(1)
        if torch.is_inference_mode_enabled():
            # Embedding only (evaluation, validation, IJB features): channels-last input makes
            # oneDNN's convolutions ~2.3x faster on CPU, equal to float32 round-off. Sampling
            # and training (with gradients) keep NCHW and their bytes.
            images = images.contiguous(memory_format=torch.channels_last)
        out = self.backbone(images)
        if isinstance(out, tuple):  # AdaFace returns (unit embedding, norm)
            unit, norm = out
            out = unit * norm
        return out

    embed = forward


def save_fr_model(path: Path, backbone: nn.Module, spec: FRSpec) -> None:
    """``model.pt``: the backbone state dict and the spec as JSON (loads with weights_only)."""
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "spec": json.dumps(
            replace(spec, kind="brownface", checkpoint=None).to_dict(), sort_keys=True
        ),
        "state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read_brownface_model(path: Path) -> tuple[FRSpec, dict]:
    payload = load_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise UserError(f"{path}: not a brownface FR model (expected format {MODEL_FORMAT!r})")
    if payload.get("version", 0) > MODEL_VERSION:
        raise UserError(
            f"{path}: FR model version {payload['version']} is newer than this brownface supports"
        )
    return FRSpec.from_dict(json.loads(payload["spec"])), payload["state_dict"]


def load_fr(spec: FRSpec | dict, device: torch.device | str = "cpu") -> FRModel:
    """Build the network a spec names and load its checkpoint (strict, code-free loading)."""
    spec = FRSpec.from_dict(spec) if isinstance(spec, dict) else spec
    if spec.checkpoint is None:
        raise UserError(f"FR model spec ({spec.kind} {spec.arch}): no checkpoint path given")
    path = Path(spec.checkpoint)
    if spec.kind == "brownface":
        stored, state = _read_brownface_model(path)
        spec = replace(stored, checkpoint=str(path))
    elif spec.kind == "iresnet":
        state = load_insightface_backbone(path)
    elif spec.kind == "adaface":
        state = load_adaface_state_dict(path)
    else:
        raise UserError(
            f"FR model spec kind: expected iresnet, adaface or brownface, got {spec.kind!r}"
        )
    backbone = build_backbone(spec)
    load_strict(backbone, state, source=str(path))
    model = FRModel(backbone, spec).to(device).eval()
    model.requires_grad_(False)
    return model


def reference_fr_spec(section: dict) -> FRSpec:
    """The spec of the validated ``reference_fr`` config section (brownface models carry their
    own architecture, so only the checkpoint counts for them)."""
    if section["kind"] == "brownface":
        return FRSpec(kind="brownface", checkpoint=section["checkpoint"])
    return FRSpec(
        kind=section["kind"],
        arch=section["arch"],
        checkpoint=section["checkpoint"],
        input_size=section["input_size"],
        colour=section["colour"],
        embedding_size=section["embedding_size"],
    )


def fr_provenance(spec: FRSpec) -> dict:
    """The spec plus the checkpoint's sha256, for store provenance."""
    data = spec.to_dict()
    if spec.checkpoint and Path(spec.checkpoint).is_file():
        data["checkpoint_sha256"] = sha256_file(spec.checkpoint)
    return data


__all__ = [
    "ARCHITECTURES",
    "FRModel",
    "FRSpec",
    "build_backbone",
    "fr_provenance",
    "load_fr",
    "save_fr_model",
]
