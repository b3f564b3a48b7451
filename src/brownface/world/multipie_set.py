"""The world's Multi-PIE: a tree with the real database's naming, cameras, flashes and
expressions, un-aligned like real photographs, plus a 5-point landmark file.

Which images exist (a subset of the real protocol, enough for the paper's three SVM subsets):

* every subject attends session 1, and each later session with probability ``attendance``;
* neutral recordings: every configured head-height camera under the frontal flash 07, and the
  frontal camera 05_1 under every configured flash (00 = no flash, ambient light only);
* expression recordings: the frontal camera 05_1 under flash 07.

Camera ids give the yaw, flash ids the light azimuth (``brownface.covariates.multipie``), the
(session, recording) the expression. Each (subject, session) has its own head pose jitter and
framing (a random shift, scale and in-plane rotation), so images really need alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brownface.covariates.landmarks import write_landmarks
from brownface.covariates.multipie import (
    CAMERA_YAW,
    EXPRESSION_OF,
    FRONTAL_CAMERA,
    HEAD_HEIGHT_CAMERAS,
    RECORDINGS,
    SESSIONS,
    MultiPieImage,
    flash_azimuth,
)
from brownface.imageio import encode, to_uint8
from brownface.runlog import progress
from brownface.seeding import torch_generator
from brownface.store import atomic_dir, atomic_path
from brownface.world.renderer import EXPRESSIONS, FaceParams, FaceRenderer

FRONTAL_FLASH = 7


@dataclass(frozen=True)
class MultiPieSpec:
    """What to photograph; defaults cover the pose, illumination and expression subsets."""

    subjects: int = 40
    image_size: int = 128
    attendance: float = 0.8  # chance of attending each of sessions 2-4
    cameras: tuple[str, ...] = HEAD_HEIGHT_CAMERAS
    flashes: tuple[int, ...] = (0, 1, 2, 3, 7, 11, 12, 13, 16)
    first_subject: int = 1  # subject ids are first_subject, first_subject + 1, ...


def plan_images(spec: MultiPieSpec, gen: torch.Generator) -> list[MultiPieImage]:
    """The list of images to render, in a fixed order."""
    images = []
    for s in range(spec.subjects):
        subject = spec.first_subject + s
        attended = [1] + [
            sess for sess in SESSIONS[1:] if float(torch.rand(1, generator=gen)) < spec.attendance
        ]
        for session in attended:
            for recording in RECORDINGS[session]:
                if EXPRESSION_OF[(session, recording)] == "neutral":
                    shots = {(cam, FRONTAL_FLASH) for cam in spec.cameras}
                    shots |= {(FRONTAL_CAMERA, f) for f in spec.flashes}
                else:
                    shots = {(FRONTAL_CAMERA, FRONTAL_FLASH)}
                for cam, flash in sorted(
                    shots, key=lambda cf: (HEAD_HEIGHT_CAMERAS.index(cf[0]), cf[1])
                ):
                    images.append(MultiPieImage(subject, session, recording, cam, flash))
    return images


def face_params(
    images: list[MultiPieImage], identities: torch.Tensor, spec: MultiPieSpec, seed: int
) -> FaceParams:
    """Renderer parameters of every image from its name, plus per-session jitter."""
    n = len(images)
    rows = {
        k: torch.zeros(n) for k in ("yaw", "pitch", "az", "strength", "ambient", "roll", "scale")
    }
    shift = torch.zeros(n, 2)
    expression = torch.zeros(n, len(EXPRESSIONS))
    sessions: dict[tuple[int, int], torch.Tensor] = {}
    for i, im in enumerate(images):
        key = (im.subject, im.session)
        if key not in sessions:  # pose jitter, framing and expression strength per session
            g = torch_generator(seed, "world/multipie/session", *key)
            sessions[key] = torch.rand(8, generator=g)
        j = sessions[key]
        rows["yaw"][i] = CAMERA_YAW[im.camera] + 6 * (j[0] - 0.5)
        rows["pitch"][i] = 10 * (j[1] - 0.5)
        azimuth = flash_azimuth(im.flash)
        rows["az"][i] = 0.0 if azimuth is None else azimuth
        rows["strength"][i] = 0.0 if azimuth is None else 0.8
        rows["ambient"][i] = 0.6 if azimuth is None else 0.3
        rows["roll"][i] = 16 * (j[2] - 0.5)
        rows["scale"][i] = 0.5 + 0.14 * j[3]
        shift[i] = 0.24 * (j[4:6] - 0.5)
        if im.expression != "neutral":
            expression[i, EXPRESSIONS.index(im.expression)] = 0.75 + 0.25 * j[6]
    subject_index = torch.tensor([im.subject - spec.first_subject for im in images])
    return FaceParams.neutral(
        identities[subject_index],
        yaw=rows["yaw"],
        pitch=rows["pitch"],
        light_azimuth=rows["az"],
        light_strength=rows["strength"],
        ambient=rows["ambient"],
        expression=expression,
        roll=rows["roll"],
        scale=rows["scale"],
        shift=shift,
    )


def build_multipie(
    renderer: FaceRenderer,
    seed: int,
    out_root: Path,
    out_landmarks: Path,
    spec: MultiPieSpec | None = None,
    batch: int = 128,
) -> int:
    """Render the tree under ``out_root`` and its landmark CSV; returns the image count."""
    spec = spec or MultiPieSpec()
    gen = torch_generator(seed, "world/multipie")
    identities = torch.randn(spec.subjects, renderer.identity_dim, generator=gen)
    images = plan_images(spec, gen)
    params = face_params(images, identities, spec, seed)
    landmarks: dict[str, np.ndarray] = {}
    with atomic_dir(out_root) as tmp:
        bar = progress(len(images), "multipie", unit="img")
        for start in range(0, len(images), batch):
            with torch.inference_mode():
                pix, pts = renderer(params[start : start + batch], resolution=spec.image_size)
            for im, array, lm in zip(images[start : start + batch], to_uint8(pix), pts.numpy()):
                rel = im.relpath("png")
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encode(array, "png"))
                landmarks[rel] = lm
            bar.update(min(batch, len(images) - start))
        bar.close()
    with atomic_path(out_landmarks) as lm_tmp:
        write_landmarks(lm_tmp, landmarks)
    return len(images)
