"""Rendering variations to the dataset layout, and the paper-style verification table."""

import hashlib

import numpy as np
import pytest
import torch

from brownface.dataset.layout import dataset_fingerprint, read_index
from brownface.dataset.render import render_variations
from brownface.errors import UserError
from brownface.store import VariationStore
from brownface.world.generator import WorldGenerator


def test_render_writes_the_dataset_layout(tmp_path):
    gen = WorldGenerator(seed=0)
    z = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    w = gen.mapping(z, truncation_psi=0.7).reshape(2, 3, 32).numpy()
    store = VariationStore(
        identity=np.array([4, 5]), w=w, embedding=np.zeros((2, 3, 8), np.float32), provenance={}
    )
    store.write(tmp_path / "variations.h5")
    n = render_variations(gen, tmp_path / "variations.h5", tmp_path / "out", 32)
    assert n == 6
    index = read_index(tmp_path / "out")
    assert index.paths == [f"images/{i:06d}/{v:03d}.png" for i in (4, 5) for v in range(3)]
    assert index.num_classes == 2 and index.labels[0] == "000"
    first = (tmp_path / "out" / index.paths[0]).read_bytes()
    assert index.sha256[0] == hashlib.sha256(first).hexdigest()  # what the image is


def test_fingerprint_follows_the_pixels_not_the_names(tmp_path):
    gen = WorldGenerator(seed=0)
    prints = []
    for seed in (0, 0, 1):
        z = torch.randn(4, 32, generator=torch.Generator().manual_seed(seed))
        w = gen.mapping(z, truncation_psi=0.7).reshape(2, 2, 32).numpy()
        path = tmp_path / f"v{seed}.h5"
        VariationStore(identity=np.arange(2), w=w, embedding=np.zeros((2, 2, 4), np.float32)).write(
            path
        )
        render_variations(gen, path, tmp_path / "out", 16)  # the same paths and labels
        prints.append(dataset_fingerprint(read_index(tmp_path / "out")))
    assert prints[0] == prints[1] != prints[2]

    # A dataset made elsewhere (no sha256 column) is fingerprinted by reading its images.
    index = tmp_path / "out" / "index.csv"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    plain = read_index(tmp_path / "out")
    assert plain.sha256 is None and dataset_fingerprint(plain) == prints[2]
    index.write_text("path,identity\nimages/000000/000.png,0\n")
    with pytest.raises(UserError, match="expected columns path,identity,label"):
        read_index(tmp_path / "out")
