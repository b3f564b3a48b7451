"""The generator behind every stage: its spec, the registry of kinds, and one loader.

A :class:`GeneratorSpec` says everything needed to rebuild a generator and use it: its kind,
checkpoint and kind-specific options, the truncation of latents drawn from z, the synthesis
noise, and the crop from its frame to an FR network's aligned input. :func:`load_generator`
returns a :class:`GeneratorBase` module with the one interface every stage uses:

    mapping(z [B, z_dim], truncation_psi=1.0) -> w [B, w_dim]
    synthesis(w [B, w_dim] or [B, num_ws, w_dim]) -> images [B, 3, R, R] in [-1, 1]
    w_avg [w_dim], z_dim, w_dim, img_resolution (= R), num_ws
    fr_crop(images, size) -> [B, 3, size, size]: the crop an FR network reads (differentiable)
    spec: the GeneratorSpec it was built from

Samplers use single w vectors (broadcast to every layer, as the paper does); ``synthesis``
also takes one w per layer for edits and projection.

A kind is a module named in :data:`GENERATOR_KINDS` that defines

    spec_options(config: dict) -> dict     its settings, read from the validated config
    build(spec: GeneratorSpec) -> GeneratorBase   the network, on the CPU, in float32

so adding a generator is that module plus one line in the registry; nothing else names kinds.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from brownface.errors import UserError
from brownface.models.align import arcface_template, fit_similarity, warp_affine
from brownface.models.checkpoints import sha256_file

#: Generator kinds: name -> module with ``spec_options(config)`` and ``build(spec)``.
GENERATOR_KINDS: dict[str, str] = {
    "world": "brownface.world.generator",  # the procedural face world of the demo
    "stylegan2": "brownface.models.stylegan2",  # NVIDIA StyleGAN2(-ADA), rosinality, generator.pt
}

#: Spec settings that only some stages read; the others get None (see :func:`generator_spec`).
STAGE_SETTINGS = ("truncation_psi", "noise_mode")
NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class FixedBox:
    """A fixed axis-aligned box [x0, x1) x [y0, y1) of the frame, resized bicubic with
    antialiasing to the FR input: how the paper crops FFHQ-aligned StyleGAN images."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if not (0 <= self.x0 < self.x1 and 0 <= self.y0 < self.y1):
            raise UserError(
                f"generator spec crop box: expected 0 <= x0 < x1 and 0 <= y0 < y1, got "
                f"[{self.x0}, {self.y0}, {self.x1}, {self.y1}]"
            )

    def apply(self, images: torch.Tensor, size: int) -> torch.Tensor:
        h, w = images.shape[-2:]
        if self.x1 > w or self.y1 > h:
            raise UserError(
                f"generator spec crop box [{self.x0}, {self.y0}, {self.x1}, {self.y1}] lies "
                f"outside the {w}x{h} frame"
            )
        box = images[..., self.y0 : self.y1, self.x0 : self.x1]
        return F.interpolate(
            box, size=(size, size), mode="bicubic", antialias=True, align_corners=False
        )


#: A crop: five frame landmarks mapped onto the ArcFace template, or a fixed box.
Crop = tuple[tuple[float, float], ...] | FixedBox


def parse_crop(crop: Any) -> Crop:
    """A spec's ``crop`` from config data: 5 points [x, y], or {"box": [x0, y0, x1, y1]}."""
    if isinstance(crop, FixedBox):
        return crop
    if isinstance(crop, Mapping):
        box = crop.get("box")
        if set(crop) != {"box"} or not isinstance(box, (list, tuple)) or len(box) != 4:
            raise UserError(f"generator spec crop: expected {{box: [x0, y0, x1, y1]}}, got {crop}")
        if any(int(v) != v for v in box):
            raise UserError(f"generator spec crop box: expected whole pixels, got {list(box)}")
        return FixedBox(*(int(v) for v in box))
    points = tuple(tuple(float(v) for v in point) for point in crop)
    if len(points) != 5 or any(len(point) != 2 for point in points):
        raise UserError(f"generator spec crop: expected 5 points [x, y], got {crop}")
    return points


def crop_to_data(crop: Crop) -> Any:
    if isinstance(crop, FixedBox):
        return {"box": [crop.x0, crop.y0, crop.x1, crop.y1]}
    return [list(point) for point in crop]


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything needed to rebuild a generator and draw from it (config ``generator``)."""

    kind: str  # a key of GENERATOR_KINDS
    checkpoint: str | None = None  # weights file; None for kinds built without one (world)
    truncation_psi: float | None = None  # w_avg + psi (w - w_avg) of draws from z; None = unread
    noise_mode: str | None = None  # const | random | none synthesis noise; None = unread
    crop: Crop | None = None  # 5 frame landmarks or {"box": [x0, y0, x1, y1]}; None = the kind's
    options: Mapping[str, Any] = field(default_factory=dict)  # the kind's own settings

    def __post_init__(self) -> None:
        if self.kind not in GENERATOR_KINDS:
            known = ", ".join(map(repr, GENERATOR_KINDS))
            raise UserError(f"generator spec kind: expected one of {known}, got {self.kind!r}")
        if self.noise_mode is not None and self.noise_mode not in NOISE_MODES:
            raise UserError(
                f"generator spec noise_mode: expected one of {', '.join(NOISE_MODES)}, "
                f"got {self.noise_mode!r}"
            )
        if self.crop is not None:
            object.__setattr__(self, "crop", parse_crop(self.crop))
        object.__setattr__(self, "options", dict(self.options))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorSpec:
        """The inverse of :meth:`to_dict`; missing optional keys are None."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"generator spec: unknown key {unknown[0]!r}; expected {', '.join(sorted(known))}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists, dicts), for Snakemake params and provenance."""
        data = asdict(self)
        data["crop"] = None if self.crop is None else crop_to_data(self.crop)
        return data

    def provenance(self) -> dict[str, Any]:
        """The spec plus the checkpoint's sha256 (what stores record about their generator)."""
        data = self.to_dict()
        if self.checkpoint is not None:
            data["checkpoint_sha256"] = sha256_file(self.checkpoint)
        return data

    def kind_module(self) -> ModuleType:
        return importlib.import_module(GENERATOR_KINDS[self.kind])


def generator_spec(config: Mapping[str, Any], unused: Iterable[str] = ()) -> GeneratorSpec:
    """The spec of a validated config's ``generator`` section.

    ``unused`` names settings of :data:`STAGE_SETTINGS` a stage never reads; they are left
    None, so that changing them in the config does not rerun that stage (Snakemake compares
    the spec it is given as a param).
    """
    section = config["generator"]
    unused = set(unused)
    if unused - set(STAGE_SETTINGS):
        raise ValueError(f"generator_spec: only {STAGE_SETTINGS} can be unused, got {unused}")
    spec = GeneratorSpec(
        kind=section["kind"],
        checkpoint=section["checkpoint"],
        truncation_psi=section["truncation_psi"],
        noise_mode=section["noise_mode"],
        crop=section["crop"],
    )
    options = spec.kind_module().spec_options(config)
    return replace(spec, options=options, **{key: None for key in unused})


def load_generator(spec: GeneratorSpec, device: torch.device | str = "cpu") -> GeneratorBase:
    """The generator a spec describes, in eval mode on ``device``, without gradients."""
    generator = spec.kind_module().build(spec)
    return generator.to(device).eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------


class GeneratorBase(nn.Module):
    """What every generator kind shares: its spec and the crop to an FR network's input.

    A kind implements ``mapping``, ``synthesis``, ``frame_landmarks`` and sets ``spec``,
    ``z_dim``, ``w_dim``, ``img_resolution``, ``num_ws`` and the ``w_avg`` buffer.
    """

    spec: GeneratorSpec
    z_dim: int
    w_dim: int
    img_resolution: int
    num_ws: int
    w_avg: torch.Tensor

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def synthesis_checkpointed(self, w: torch.Tensor) -> torch.Tensor:
        """``synthesis`` with activation checkpointing: its activations are recomputed in the
        backward pass instead of kept. Here one segment (the whole network); a kind with
        stages overrides it with one segment per stage, which bounds the peak too."""
        return checkpoint(self.synthesis, w, use_reentrant=False)

    def frame_landmarks(self) -> torch.Tensor:
        """[5, 2] pixel positions of a typical face's landmarks in the generator's frame
        (image-left eye, image-right eye, nose tip, image-left and image-right mouth corner)."""
        raise NotImplementedError

    def default_crop(self) -> Crop:
        """The kind's own crop when the spec has none: its frame landmarks, by default."""
        return tuple(tuple(p) for p in self.frame_landmarks().detach().double().cpu().tolist())

    def crop_spec(self) -> Crop:
        return self.spec.crop if self.spec.crop is not None else self.default_crop()

    def fr_similarity(self, size: int) -> torch.Tensor:
        """[2, 3] pixel matrix from the frame to an ArcFace-aligned crop of size^2, for a crop
        given by landmarks: generated faces are aligned by construction, so no landmarks are
        detected; one least-squares similarity maps the frame's typical landmarks (the spec's
        ``crop``, else the kind's own) onto the ArcFace template."""
        crop = self.crop_spec()
        if isinstance(crop, FixedBox):
            raise ValueError("fr_similarity: this generator crops with a fixed box")
        if self.spec.crop is not None:
            points = torch.tensor(crop, dtype=torch.float32)
        else:
            points = self.frame_landmarks().detach().float().cpu()
        return fit_similarity(points[None], arcface_template(size)[None].to(points))[0]

    def fr_crop(self, images: torch.Tensor, size: int) -> torch.Tensor:
        """The FR network's input [B, C, size, size] cut from generated images [B, C, R, R]:
        a bilinear similarity warp onto the ArcFace template, or a fixed box resized bicubic.
        Differentiable in the images (the samplers go through it)."""
        crop = self.crop_spec()
        if isinstance(crop, FixedBox):
            return crop.apply(images, size)
        matrix = self.fr_similarity(size).to(images)  # device and dtype (float64 tests)
        return warp_affine(images, matrix.expand(images.shape[0], 2, 3), size)

    def check_w(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, w_dim], or [B, num_ws, w_dim] with every layer equal when num_ws is 1."""
        if w.ndim == 3 and w.shape[1:] == (self.num_ws, self.w_dim) and self.num_ws == 1:
            w = w[:, 0]
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ValueError(
                f"w must have shape [B, {self.w_dim}] or [B, {self.num_ws}, {self.w_dim}], "
                f"got {list(w.shape)}"
            )
        return w
