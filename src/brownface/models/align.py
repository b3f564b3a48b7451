"""Five-point face alignment: similarity fits to the ArcFace template, and image warps.

The ArcFace/insightface crop maps 5 landmarks (image-left eye, image-right eye, nose tip,
image-left and image-right mouth corner) to a fixed 112x112 template with the least-squares
similarity transform (Umeyama's solution, as ``skimage.transform.SimilarityTransform``), then
warps bilinearly with zero border. Coordinates are pixels with pixel centres at integers.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

# insightface arcface_dst for 112x112 (the 96x112 template shifted right by 8 pixels).
ARCFACE_TEMPLATE_112 = torch.tensor(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


def arcface_template(size: int = 112) -> torch.Tensor:
    """The ArcFace template for a square crop of ``size`` pixels (scaled from 112)."""
    return (ARCFACE_TEMPLATE_112 + 0.5) * (size / 112) - 0.5


def fit_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity mapping ``src`` [B, K, 2] onto ``dst`` [B or 1, K, 2].

    Returns [B, 2, 3] matrices M with dst ~= M @ [x, y, 1]. For 2-D points this closed form is
    Umeyama's estimate without reflection.
    """
    dst = dst.expand_as(src)
    ms, md = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - ms, dst - md
    denom = (s * s).sum((1, 2))
    a = (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1]).sum(1) / denom
    b = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1) / denom
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], 1)  # [B, 2, 2]
    t = md[:, 0] - (rot @ ms[:, 0, :, None])[..., 0]
    return torch.cat([rot, t[..., None]], -1)


def warp_affine(images: torch.Tensor, matrices: torch.Tensor, size: int) -> torch.Tensor:
    """Warp images [B, C, H, W] with pixel matrices [B, 2, 3] (source -> output) to size^2.

    Bilinear, zero outside, like ``cv2.warpAffine(..., borderValue=0)``.
    """
    b, _, h, w = images.shape
    full = torch.cat([matrices, matrices.new_tensor([0, 0, 1]).expand(b, 1, 3)], 1)
    inv = torch.linalg.inv(full)[:, :2]  # output pixel -> source pixel
    # Normalised coords (align_corners=False): pixel p <-> (2p + 1) / n - 1.
    to_pix = torch.tensor(
        [[size / 2, 0, size / 2 - 0.5], [0, size / 2, size / 2 - 0.5], [0, 0, 1.0]]
    )
    from_pix = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1.0]])
    theta = from_pix.to(inv) @ torch.cat([inv, full[:, 2:]], 1) @ to_pix.to(inv)
    grid = F.affine_grid(theta[:, :2], [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_matrix(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply [B, 2, 3] matrices to points [B, K, 2]."""
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]
