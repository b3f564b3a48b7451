"""FFHQ face alignment (NVlabs ffhq-dataset ``recreate_aligned_images``), from landmarks.

A StyleGAN trained on FFHQ only reproduces faces framed as FFHQ frames them, so real photographs
are aligned with the same procedure before they are projected (research notes, formats §9):

1. eye centres ``eye_left`` / ``eye_right`` (image left / right), ``eye_avg``,
   ``eye_to_eye = eye_right - eye_left``; mouth corners, ``mouth_avg``,
   ``eye_to_mouth = mouth_avg - eye_avg``;
2. ``x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1]``, normalised, scaled by
   ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``; ``y = flipud(x) * [-1, 1]``;
   ``c = eye_avg + 0.1 eye_to_mouth``;
3. ``quad = [c - x - y, c - x + y, c + x + y, c + x - y]`` (TL, BL, BR, TR), ``qsize = 2 |x|``;
4. shrink the photo by ``floor(qsize / output_size / 2)`` when that exceeds 1 (Lanczos);
5. crop to the quad's bounding box plus ``border = max(rint(0.1 qsize), 3)``;
6. where the quad still leaves the photo, reflect-pad (at least ``rint(0.3 qsize)``) and fade the
   padding into a blurred copy and then the median colour;
7. PIL ``QUAD`` transform (bilinear) to ``transform_size = 4 output_size``, then a Lanczos
   (antialiased) resize to ``output_size``.

The quad therefore maps onto the whole output: an input point ``p`` lands at output pixel
``N/2 (1 + (p - c).x / |x|^2) - 1/2`` across and ``N/2 (1 + (p - c).y / |y|^2) - 1/2`` down
(:func:`output_coords`; pixel centres at integers). For an upright face whose eyes are farther
apart than 0.9 eye-to-mouth, the eyes land at ``(3/8 N - 1/2, ...)`` and ``(5/8 N - 1/2, ...)``.

Landmarks. FFHQ takes the eye centres as the means of dlib's six eye-contour points (68-point
iBUG layout, ``lm[36:42]`` and ``lm[42:48]``) and the mouth corners ``lm[48]`` and ``lm[54]``. Our
5-point CSV (``landmarks.py``) gives eye *centres* directly (used as they are; a detector's eye
point and the contour mean differ by a pixel or two) and the same mouth corners; the nose is not
used. dlib's 68-point detector (:func:`dlib_landmarks`) is used only when no landmark file is
given, ``dlib`` is importable and a shape-predictor file is named; its eye-contour means and
mouth corners make exactly FFHQ's input.

One difference from the ADA README's FFHQ-256, which aligns at 1024 and box-downsamples to 256:
here the alignment goes straight to ``output_size`` (the generator's resolution), so the last
resize is Lanczos; the two differ by a fraction of a pixel's blur.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.ndimage
from PIL import Image

from brownface.covariates.landmarks import read_landmarks
from brownface.covariates.reader import read_multipie
from brownface.errors import UserError

log = logging.getLogger(__name__)

TRANSFORM_FACTOR = 4  # transform_size = 4 * output_size (FFHQ: 4096 for 1024)
MIN_QSIZE = 4.0  # pixels; a smaller face quad is a degenerate set of landmarks


def eyes_mouth(points: np.ndarray) -> np.ndarray:
    """Eye centres and mouth corners [4, 2] (eye_left, eye_right, mouth_left, mouth_right).

    Accepts those four points, the 5 ArcFace points (eyes, nose, mouth corners) or dlib's 68
    iBUG points (eye centres = means of the eye contours, as FFHQ).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape == (4, 2):
        return p
    if p.shape == (5, 2):
        return p[[0, 1, 3, 4]]
    if p.shape == (68, 2):
        return five_points(p)[[0, 1, 3, 4]]
    raise ValueError(f"landmarks must have shape (4, 2), (5, 2) or (68, 2), got {p.shape}")


def ffhq_quad(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented crop square: corners [4, 2] (TL, BL, BR, TR) and its side ``qsize``."""
    eye_left, eye_right, mouth_left, mouth_right = eyes_mouth(points)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def landmark_problem(points: np.ndarray | None) -> str | None:
    """Why these landmarks cannot be aligned (missing, not finite, degenerate), else None."""
    if points is None:
        return "no landmarks"
    p = eyes_mouth(points)
    if not np.all(np.isfinite(p)):
        return "landmarks are not finite"
    eye_avg = (p[0] + p[1]) / 2
    x = (p[1] - p[0]) - np.flipud((p[2] + p[3]) / 2 - eye_avg) * [-1, 1]
    if np.hypot(*x) < 1e-6:
        return "degenerate landmarks (eyes and mouth coincide)"
    qsize = ffhq_quad(p)[1]
    if qsize < MIN_QSIZE:
        return f"degenerate landmarks (face quad {qsize:.2f} px < {MIN_QSIZE:g} px)"
    return None


def output_coords(points: np.ndarray, landmarks: np.ndarray, output_size: int) -> np.ndarray:
    """Where input points [K, 2] land in the aligned output (pixel centres at integers)."""
    quad, _ = ffhq_quad(landmarks)
    c = quad.mean(0)
    x = (quad[3] - quad[0]) / 2
    y = (quad[1] - quad[0]) / 2
    d = np.asarray(points, dtype=np.float64) - c
    u = d @ x / (x @ x)
    v = d @ y / (y @ y)
    return np.stack([(u + 1) * output_size / 2 - 0.5, (v + 1) * output_size / 2 - 0.5], -1)


def _pad_and_blend(
    img: Image.Image, quad: np.ndarray, qsize: float, border: int
) -> tuple[Image.Image, np.ndarray]:
    """Step 6: reflect-pad where the quad leaves the image, fading into blur and the median."""
    pad = [
        max(-int(math.floor(quad[:, 0].min())) + border, 0),
        max(-int(math.floor(quad[:, 1].min())) + border, 0),
        max(int(math.ceil(quad[:, 0].max())) - img.size[0] + border, 0),
        max(int(math.ceil(quad[:, 1].max())) - img.size[1] + border, 0),
    ]
    if max(pad) <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
    left, top, right, bottom = (max(int(v), 1) for v in pad)
    arr = np.pad(np.float32(img), ((top, bottom), (left, right), (0, 0)), "reflect")
    h, w, _ = arr.shape
    yy, xx, _ = np.ogrid[:h, :w, :1]
    mask = np.maximum(
        1.0 - np.minimum(np.float32(xx) / left, np.float32(w - 1 - xx) / right),
        1.0 - np.minimum(np.float32(yy) / top, np.float32(h - 1 - yy) / bottom),
    )
    blur = qsize * 0.02
    arr += (scipy.ndimage.gaussian_filter(arr, [blur, blur, 0]) - arr) * np.clip(
        mask * 3.0 + 1.0, 0.0, 1.0
    )
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    out = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
    return out, quad + [left, top]


def align_image(
    image: Image.Image,
    eyes_mouth_points: np.ndarray,  # [4, 2], [5, 2] or [68, 2] pixel coordinates
    output_size: int,
    transform_size: int | None = None,  # None = 4 * output_size
    enable_padding: bool = True,
) -> Image.Image:
    """Align one face by the FFHQ procedure (module docstring); returns an RGB image."""
    problem = landmark_problem(eyes_mouth_points)
    if problem is not None:
        raise ValueError(problem)
    transform_size = transform_size or TRANSFORM_FACTOR * output_size
    img = image.convert("RGB")
    quad, qsize = ffhq_quad(eyes_mouth_points)

    # Step 4: shrink.
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink)))
        img = img.resize(rsize, Image.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Step 5: crop.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (
        max(int(math.floor(quad[:, 0].min())) - border, 0),
        max(int(math.floor(quad[:, 1].min())) - border, 0),
        min(int(math.ceil(quad[:, 0].max())) + border, img.size[0]),
        min(int(math.ceil(quad[:, 1].max())) + border, img.size[1]),
    )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Step 6: pad.
    if enable_padding:
        img, quad = _pad_and_blend(img, quad, qsize, border)

    # Step 7: transform, then antialiased resize.
    img = img.transform(
        (transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR
    )
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.LANCZOS)
    return img


# ---------------------------------------------------------------------------------------------
# A whole tree.


def load_rgb(path: Path) -> Image.Image:
    """An image file as RGB; one line naming the file if it is missing or unreadable."""
    if not path.is_file():
        raise UserError(f"{path}: image not found")
    try:
        image = Image.open(path)
        image.load()
    except OSError as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None
    return image.convert("RGB")


def five_points(lm68: np.ndarray) -> np.ndarray:
    """dlib's 68 iBUG points -> our 5 points, eyes as FFHQ takes them (contour means)."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[36:42].mean(0), lm68[42:48].mean(0), lm68[30], lm68[48], lm68[54]])


def align_tree(
    root: str | Path,
    landmarks_csv: str | Path | None,
    output_size: int,
    relpaths: Sequence[str] | None = None,  # images to align; None = every image of the tree
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """Align images of a Multi-PIE tree: ([(relpath, uint8 [S, S, 3])], [(relpath, reason)]).

    Images with missing or degenerate landmarks, and (when the whole tree is walked) files whose
    names are not Multi-PIE names, are returned as failures instead of being aligned.
    """
    root = Path(root)
    failures: list[tuple[str, str]] = []
    if relpaths is None:
        tree = read_multipie(root)
        relpaths = tree.relpaths()
        failures.extend(tree.bad)
    if landmarks_csv is None:
        raise UserError(
            "no landmark file given: pass a 5-point landmark CSV (the detect_landmarks rule "
            "makes one)"
        )
    landmarks = read_landmarks(landmarks_csv)
    aligned = []
    for rel in relpaths:
        problem = landmark_problem(landmarks.get(rel))
        if problem is not None:
            failures.append((rel, problem))
            continue
        image = load_rgb(root / rel)
        aligned.append((rel, np.asarray(align_image(image, landmarks[rel], output_size))))
    if failures:
        log.warning(
            "%d images not aligned, e.g. %s: %s", len(failures), failures[0][0], failures[0][1]
        )
    return aligned, failures
