"""Images between tensors and files: [-1, 1] NCHW tensors <-> uint8 HWC arrays <-> bytes.

Encoding is deterministic (fixed quality, no timestamps), so the same pixels give the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from brownface.store import atomic_path

JPEG_QUALITY = 95


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3] (rounded, clipped)."""
    x = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] (or [H, W, 3]) -> float [B, 3, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(array))
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


def encode(image: np.ndarray, fmt: str = "jpeg", quality: int = JPEG_QUALITY) -> bytes:
    """Encode one uint8 HWC RGB image as JPEG (``quality`` 1..100, 4:4:4) or PNG bytes
    (``quality`` unread)."""
    buf = io.BytesIO()
    pil = Image.fromarray(image, mode="RGB") if image.ndim == 3 else Image.fromarray(image)
    if fmt in ("jpeg", "jpg"):
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {quality}")
        pil.save(buf, format="JPEG", quality=int(quality), subsampling=0)
    elif fmt == "png":
        pil.save(buf, format="PNG", optimize=False)
    else:
        raise ValueError(f"unknown image format {fmt!r}; expected 'jpeg' or 'png'")
    return buf.getvalue()


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Save one uint8 HWC image; the format follows the suffix (.jpg/.jpeg/.png)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    write_bytes(path, encode(image, "png" if suffix == "png" else "jpeg"))
