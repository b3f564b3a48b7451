"""AdaFace-style training augmentation on float RGB tensors, drawn from an explicit generator.

Images are float [3, H, W] in [0, 1], RGB (what ``FaceDataset`` hands over before mapping to
[-1, 1]); the output has the same shape, dtype and range. Steps, in AdaFace's order, each gated
by its own probability:

1. crop: a RandomResizedCrop box (scale 0.2-1, aspect 3/4-4/3), kept in place on a black canvas
   (everything outside the box becomes 0; the crop is not rescaled);
2. low resolution: down by a factor U(0.2, 1), back up to the original size, with an
   interpolation drawn each way from nearest / bilinear / bicubic / area;
3. photometric: brightness, contrast, saturation factors U(0.5, 1.5) in a random order
   (torchvision's ColorJitter(0.5, 0.5, 0.5, 0) on tensors);
4. horizontal flip.

Every draw comes from the ``torch.Generator`` passed in, in a fixed order, so the same generator
state gives the same output. AdaFace uses cv2/PIL on BGR uint8 images (and cv2 also has Lanczos);
results therefore match it in distribution, not pixel for pixel.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601 luma of R, G, B, as torchvision


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high)."""
    return int(torch.randint(low, high, (), generator=gen))


def crop_box(
    height: int,
    width: int,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision's RandomResizedCrop.get_params draws it.

    Area fraction uniform in ``scale``, aspect ratio log-uniform in ``ratio``, up to 10 attempts
    at a box that fits; otherwise the largest central box whose aspect is clipped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(gen, *scale)
        aspect = math.exp(_uniform(gen, *log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return _randint(gen, 0, height - h + 1), _randint(gen, 0, width - w + 1), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def crop_in_place(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Black out everything outside a random crop box; the box keeps its pixels and place."""
    top, left, h, w = crop_box(image.shape[1], image.shape[2], gen)
    out = torch.zeros_like(image)
    out[:, top : top + h, left : left + w] = image[:, top : top + h, left : left + w]
    return out


def _resize(image: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    antialias = mode in ("bilinear", "bicubic")  # the modes interpolate supports it for
    extra = {"align_corners": False} if antialias else {}
    return F.interpolate(image[None], size=size, mode=mode, antialias=antialias, **extra)[0]


def low_resolution(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Down by U(0.2, 1) (at least 1 pixel), back up; a random interpolation each way."""
    height, width = image.shape[1:]
    factor = _uniform(gen, 0.2, 1.0)
    small = (max(1, int(factor * height)), max(1, int(factor * width)))
    down = INTERPOLATIONS[_randint(gen, 0, len(INTERPOLATIONS))]
    up = INTERPOLATIONS[_randint(gen, 0, len(INTERPOLATIONS))]
    image = _resize(_resize(image, small, down), (height, width), up)
    return image.clamp(0, 1)  # bicubic overshoots


def _grayscale(image: torch.Tensor) -> torch.Tensor:
    """Luma [1, H, W] of an RGB image [3, H, W]."""
    weights = image.new_tensor(GRAY_WEIGHTS)[:, None, None]
    return (image * weights).sum(dim=0, keepdim=True)


def _blend(image: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * image + (1 - factor) * other).clamp(0, 1)


def color_jitter(image: torch.Tensor, gen: torch.Generator, strength: float = 0.5) -> torch.Tensor:
    """Brightness, contrast and saturation, each by a factor U(1 - strength, 1 + strength).

    The order is a random permutation and all three factors are drawn first, as torchvision's
    ColorJitter.get_params; hue is left alone (AdaFace sets it to 0).
    """
    order = torch.randperm(3, generator=gen).tolist()
    factors = [_uniform(gen, 1 - strength, 1 + strength) for _ in range(3)]
    for step in order:
        factor = factors[step]
        if step == 0:  # brightness: blend with black
            image = (image * factor).clamp(0, 1)
        elif step == 1:  # contrast: blend with the mean luma
            image = _blend(image, _grayscale(image).mean(), factor)
        else:  # saturation: blend with the luma image
            image = _blend(image, _grayscale(image), factor)
    return image


class Augmenter:
    """The AdaFace augmentation pipeline; ``augmenter(image, gen)`` returns a new image."""

    def __init__(
        self,
        p_crop: float = 0.2,  # probability of the in-place random crop
        p_lowres: float = 0.2,  # probability of the down-and-up resampling
        p_photo: float = 0.2,  # probability of the colour jitter
        p_flip: float = 0.5,  # probability of the horizontal flip
    ) -> None:
        self.p_crop, self.p_lowres, self.p_photo, self.p_flip = p_crop, p_lowres, p_photo, p_flip

    def __repr__(self) -> str:
        return (
            f"Augmenter(p_crop={self.p_crop}, p_lowres={self.p_lowres}, "
            f"p_photo={self.p_photo}, p_flip={self.p_flip})"
        )

    def __call__(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected shape [3, H, W], got {list(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"image: expected a float tensor in [0, 1], got {image.dtype}")
        # Gate draw, then the step's own draws, step by step: the stream order is fixed.
        if float(torch.rand((), generator=gen)) < self.p_crop:
            image = crop_in_place(image, gen)
        if float(torch.rand((), generator=gen)) < self.p_lowres:
            image = low_resolution(image, gen)
        if float(torch.rand((), generator=gen)) < self.p_photo:
            image = color_jitter(image, gen)
        if float(torch.rand((), generator=gen)) < self.p_flip:
            image = image.flip(-1)
        return image

    def batch(self, images: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        """Augment [N, 3, H, W], image i with ``gens[i]`` (one generator per image)."""
        if len(gens) != len(images):
            raise ValueError(
                f"gens: expected one generator per image ({len(images)}), got {len(gens)}"
            )
        return torch.stack([self(image, gen) for image, gen in zip(images, gens)])
