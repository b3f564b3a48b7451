"""The world generator's "training set" as FFHQ ships its faces: one folder per training
identity, images in the generator's own frame (``<k:03d>/<j:02d>.png``).

These are the faces the generator reproduces (``WorldGenerator.training_identity``); embedded
as ``generator_frames`` they are the real faces an identities recipe avoids and the leakage
measure searches. Pose, light, expression and scene are mild, as in FFHQ's portraits.
"""

from __future__ import annotations

from pathlib import Path

import torch

from brownface.imageio import encode, to_uint8
from brownface.runlog import progress
from brownface.seeding import torch_generator
from brownface.store import atomic_dir
from brownface.world.capture import sample_nuisance
from brownface.world.generator import training_identities
from brownface.world.renderer import FaceParams, FaceRenderer


def training_face_name(identity: int, image: int) -> str:
    """The path of a training face under the set's root."""
    return f"{identity:03d}/{image:02d}.png"


def training_identity_of(name: str) -> int:
    """The training identity a face's path names (``007/01.png`` -> 7)."""
    return int(Path(name).parent.name)


def build_training_faces(
    renderer: FaceRenderer,
    seed: int,
    out_root: Path,
    identities: int,
    images_per_identity: int = 2,
    batch: int = 256,
) -> int:
    """Render the set under ``out_root`` (atomically); returns the number of images."""
    ident = training_identities(seed, identities, renderer.identity_dim)
    person = torch.arange(identities).repeat_interleave(images_per_identity)
    n = len(person)
    gen = torch_generator(seed, "world/training_faces")
    params = FaceParams.neutral(ident[person], **sample_nuisance(gen, n, "lfw"))
    with atomic_dir(out_root) as tmp:
        bar = progress(n, "world training faces", unit="img")
        for start in range(0, n, batch):
            with torch.inference_mode():
                images, _ = renderer(params[start : start + batch])
            for offset, array in enumerate(to_uint8(images)):
                i = start + offset
                path = Path(tmp) / training_face_name(int(person[i]), i % images_per_identity)
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(encode(array, "png"))
            bar.update(len(images))
        bar.close()
    return n
