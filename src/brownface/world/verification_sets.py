"""The world's LFW and CFP-FP verification sets, written in the real formats.

Both are insightface ``.bin`` files (pickled (encoded JPEG bytes, issame); images 2i and 2i+1
form pair i; 10 folds, each a block of same pairs then a block of different pairs) of
ArcFace-aligned 112x112 crops. LFW is also written as an original-LFW tree
(``lfw/Name/Name_0001.jpg`` plus a tab-separated ``pairs.txt`` with header ``10\\t300``) holding
the same aligned crops (like the aligned LFW copies in common use), in the same pair order.
Identities of each set come from their own seeded stream, disjoint from every other world set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brownface.evaluate.binfile import write_bin
from brownface.evaluate.lfw import image_relpath, write_pairs
from brownface.imageio import encode, to_uint8
from brownface.seeding import torch_generator
from brownface.store import atomic_dir, atomic_path
from brownface.world.capture import arcface_framing, render_batched, sample_nuisance
from brownface.world.renderer import FaceParams, FaceRenderer


@dataclass(frozen=True)
class Photo:
    """One photograph of a world person, by (person, 1-based image index)."""

    person: int
    index: int


def _photograph(
    renderer: FaceRenderer,
    identities: torch.Tensor,
    photos: list[Photo],
    presets: list[str],
    gen: torch.Generator,
    size: int,
) -> list[bytes]:
    """Render ArcFace-aligned JPEG crops of the given photos (nuisance drawn per preset)."""
    person = torch.tensor([p.person for p in photos])
    nuisance: dict[str, torch.Tensor] = {}
    for preset in sorted(set(presets)):
        rows = torch.tensor([i for i, p in enumerate(presets) if p == preset])
        for key, value in sample_nuisance(gen, len(rows), preset).items():
            if key not in nuisance:
                nuisance[key] = torch.zeros(len(photos), *value.shape[1:])
            nuisance[key][rows] = value
    params = FaceParams.neutral(identities[person], **nuisance)
    params = arcface_framing(renderer, params, size)
    images, _ = render_batched(renderer, params, size)
    return [encode(img, "jpeg") for img in to_uint8(images)]


def _lfw_name(person: int) -> str:
    return f"World_Person_{person:05d}"


def build_lfw(
    renderer: FaceRenderer,
    seed: int,
    out_bin: Path,
    out_tree: Path,
    out_pairs: Path,
    folds: int = 10,
    pairs_per_fold: int = 300,
    size: int = 112,
) -> None:
    """LFW-like set: mild nuisance; folds are person-disjoint.

    Each fold has ``pairs_per_fold`` people with three photos: photos 1 and 2 make that
    person's same pair; photo 3 meets another person's photo 3 in a different pair.
    """
    gen = torch_generator(seed, "world/lfw")
    n_people = folds * pairs_per_fold
    identities = torch.randn(n_people, renderer.identity_dim, generator=gen)
    photos = [Photo(p, i) for p in range(n_people) for i in (1, 2, 3)]
    encoded = _photograph(renderer, identities, photos, ["lfw"] * len(photos), gen, size)
    jpeg = {(ph.person, ph.index): data for ph, data in zip(photos, encoded)}

    fold_pairs, bins, issame = [], [], []
    for f in range(folds):
        people = list(range(f * pairs_per_fold, (f + 1) * pairs_per_fold))
        offset = 1 + int(torch.randint(pairs_per_fold - 1, (1,), generator=gen))
        matched = [(_lfw_name(p), 1, 2) for p in people]
        mismatched = [
            (_lfw_name(p), 3, _lfw_name(people[(k + offset) % pairs_per_fold]), 3)
            for k, p in enumerate(people)
        ]
        fold_pairs.append((matched, mismatched))
        for p in people:
            bins += [jpeg[(p, 1)], jpeg[(p, 2)]]
            issame.append(True)
        for k, p in enumerate(people):
            bins += [jpeg[(p, 3)], jpeg[(people[(k + offset) % pairs_per_fold], 3)]]
            issame.append(False)

    with atomic_path(out_bin) as tmp:
        write_bin(tmp, bins, issame)
    with atomic_dir(out_tree) as tmp:
        for (person, index), data in jpeg.items():
            path = tmp / image_relpath(_lfw_name(person), index)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    with atomic_path(out_pairs) as tmp:
        write_pairs(tmp, fold_pairs)


def build_cfp_fp(
    renderer: FaceRenderer,
    seed: int,
    out_bin: Path,
    folds: int = 10,
    people_per_fold: int = 50,
    size: int = 112,
) -> None:
    """CFP-FP-like set: each person has 10 frontal and 4 profile photos; every pair is
    frontal vs profile; 7 same and 7 different pairs per person (350 + 350 per fold by default).
    """
    gen = torch_generator(seed, "world/cfp_fp")
    n_people = folds * people_per_fold
    identities = torch.randn(n_people, renderer.identity_dim, generator=gen)
    photos = [Photo(p, i) for p in range(n_people) for i in range(1, 15)]
    presets = ["frontal" if ph.index <= 10 else "profile" for ph in photos]
    encoded = _photograph(renderer, identities, photos, presets, gen, size)
    jpeg = {(ph.person, ph.index): data for ph, data in zip(photos, encoded)}

    bins, issame = [], []
    for f in range(folds):
        people = list(range(f * people_per_fold, (f + 1) * people_per_fold))
        same = [(p, 1 + k, p, 11 + k % 4) for p in people for k in range(7)]
        offsets = 1 + torch.randint(people_per_fold - 1, (len(same),), generator=gen)
        different = [
            (
                p,
                1 + (k + 3) % 10,
                people[(j + int(offsets[j * 7 + k])) % people_per_fold],
                11 + k % 4,
            )
            for j, p in enumerate(people)
            for k in range(7)
        ]
        for pairs, label in ((same, True), (different, False)):
            for p1, i1, p2, i2 in pairs:
                bins += [jpeg[(p1, i1)], jpeg[(p2, i2)]]
                issame.append(label)
    with atomic_path(out_bin) as tmp:
        write_bin(tmp, bins, issame)


def bin_fold_structure(issame: np.ndarray, folds: int = 10) -> list[tuple[int, int]]:
    """(same, different) counts of each of the ``folds`` contiguous folds, for checks."""
    return [(int(c.sum()), int((~c).sum())) for c in np.array_split(issame.astype(bool), folds)]
