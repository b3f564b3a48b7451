"""The world's IJB-C-like template benchmark, in insightface's IJB layout.

``loose_crop/<k>.jpg`` holds loose crops with the face off-centre (so the evaluator must align
with the landmarks), and ``meta/`` the three space-separated files: ``ijbc_face_tid_mid.txt``
(image, template, media), ``ijbc_name_5pts_score.txt`` (image, 5 landmarks, detector score) and
``ijbc_template_pair_label.txt`` (template, template, 1 genuine / 0 impostor).

Each subject has 2-4 templates; each template 1-3 media (a photo or a video's frames sharing
pose and light) with 1-6 images in all. Every pair of templates is listed: those of one subject
are genuine, the others impostor. The detector score falls with |yaw|, as a detector's does.

For 1:N, each subject's first template is its gallery template (subjects of even index in the
first gallery part, odd in the second, as IJB-C's G1 and G2 split its subjects) and its other
templates are the mixed probes; the lists are NIST's CSVs (one row per image).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from brownface.evaluate.ijb import (
    GALLERIES,
    IJBMeta,
    identification_paths,
    write_ijb,
    write_template_subjects,
)
from brownface.imageio import encode, to_uint8
from brownface.seeding import torch_generator
from brownface.store import atomic_dir
from brownface.world.capture import arcface_framing, render_batched, sample_nuisance
from brownface.world.renderer import FaceParams, FaceRenderer


def _plan(subjects: int, gen: torch.Generator) -> list[tuple[int, int, int]]:
    """(subject, template, media) of every image; template and media ids count from 1."""
    rows, template, media = [], 0, 0
    for s in range(subjects):
        for _ in range(int(torch.randint(2, 5, (1,), generator=gen))):
            template += 1
            budget = int(torch.randint(1, 7, (1,), generator=gen))
            n_media = min(budget, int(torch.randint(1, 4, (1,), generator=gen)))
            sizes = [1] * n_media
            for _ in range(budget - n_media):  # spread the other images over the media
                sizes[int(torch.randint(n_media, (1,), generator=gen))] += 1
            for size in sizes:
                media += 1
                rows += [(s, template, media)] * size
    return rows


def _loose(params: FaceParams, gen: torch.Generator) -> FaceParams:
    """Shrink, shift and roll an aligned framing into a loose, off-centre crop."""
    n = params.identity.shape[0]
    s2 = 0.45 + 0.25 * torch.rand(n, generator=gen)
    r2 = 30 * (torch.rand(n, generator=gen) - 0.5)
    t2 = 0.5 * (torch.rand(n, 2, generator=gen) - 0.5)
    rad = torch.deg2rad(r2)
    c, s = torch.cos(rad), torch.sin(rad)
    t1 = params.shift
    shift = s2[:, None] * torch.stack([c * t1[:, 0] - s * t1[:, 1], s * t1[:, 0] + c * t1[:, 1]], 1)
    return params.replace(roll=params.roll + r2, scale=params.scale * s2, shift=shift + t2)


def build_ijbc(
    renderer: FaceRenderer,
    seed: int,
    out_root: Path,
    subjects: int = 100,
    image_size: int = 128,
    prefix: str = "ijbc",
) -> int:
    """Write the set under ``out_root``; returns the number of images."""
    gen = torch_generator(seed, "world/ijbc")
    identities = torch.randn(subjects, renderer.identity_dim, generator=gen)
    rows = _plan(subjects, gen)
    subject = torch.tensor([r[0] for r in rows])
    media_ids = np.array([r[2] for r in rows], dtype=np.int64)

    # One nuisance draw per media; its frames jitter around it.
    per_media = sample_nuisance(gen, int(media_ids.max()), "wild")
    index = torch.from_numpy(media_ids - 1)
    nuisance = {k: v[index].clone() for k, v in per_media.items()}
    nuisance["yaw"] = (nuisance["yaw"] + 4 * torch.randn(len(rows), generator=gen)).clamp(-90, 90)
    nuisance["light_azimuth"] += 4 * torch.randn(len(rows), generator=gen)
    params = FaceParams.neutral(identities[subject], **nuisance)
    params = _loose(arcface_framing(renderer, params, image_size), gen)
    images, landmarks = render_batched(renderer, params, image_size)

    yaw = nuisance["yaw"].abs() / 90
    score = (0.99 - 0.45 * yaw**2 - 0.05 * torch.rand(len(rows), generator=gen)).clamp(0.3, 1.0)
    templates = np.array([r[1] for r in rows], dtype=np.int64)
    owner = {r[1]: r[0] for r in rows}
    ids = sorted(owner)
    t1, t2 = np.array(np.triu_indices(len(ids), k=1)) + 1  # template ids are 1..T
    labels = np.array([owner[a] == owner[b] for a, b in zip(t1, t2)], dtype=np.int64)
    names = [f"{k + 1}.jpg" for k in range(len(rows))]
    meta = IJBMeta(
        image_names=names,
        template_ids=templates,
        media_ids=media_ids,
        landmarks=landmarks.numpy().astype(np.float32),
        scores=score.numpy().astype(np.float32),
        t1=t1.astype(np.int64),
        t2=t2.astype(np.int64),
        labels=labels,
    )
    with atomic_dir(out_root) as tmp:
        crops = tmp / "loose_crop"
        crops.mkdir()
        for name, array in zip(names, to_uint8(images)):
            (crops / name).write_bytes(encode(array, "jpeg"))
        write_ijb(tmp, meta, prefix=prefix)
        _write_identification(tmp, rows, names, prefix)
    return len(rows)


def _write_identification(
    root: Path, rows: list[tuple[int, int, int]], names: list[str], prefix: str
) -> None:
    """Gallery parts and mixed probes of the 1:N protocol (subject ids count from 1)."""
    first_template: dict[int, int] = {}
    for s, t, _ in rows:
        first_template.setdefault(s, t)
    galleries, probe = identification_paths(root, prefix)
    lists: dict[Path, list[int]] = {p: [] for p in [*galleries, probe]}
    for k, (s, t, _) in enumerate(rows):
        target = galleries[s % len(GALLERIES[prefix])] if first_template[s] == t else probe
        lists[target].append(k)
    for path, ks in lists.items():
        write_template_subjects(
            path, [rows[k][1] for k in ks], [rows[k][0] + 1 for k in ks], [names[k] for k in ks]
        )
