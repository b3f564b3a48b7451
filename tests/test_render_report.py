"""Rendering variations to the training layout, and the paper-style verification table."""

import json

import numpy as np
import torch

from brownface.dataset.render import render_variations
from brownface.report.tables import verification_table
from brownface.sampling.embedder import world_crop_matrix
from brownface.store import VariationStore
from brownface.train.data import read_index
from brownface.world.generator import WorldGenerator


def test_render_writes_the_training_layout(tmp_path):
    gen = WorldGenerator(seed=0)
    z = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    w = gen.mapping(z, truncation_psi=0.7).reshape(2, 3, 32).numpy()
    store = VariationStore(
        identity=np.array([4, 5]), w=w, embedding=np.zeros((2, 3, 8), np.float32), provenance={}
    )
    store.write(tmp_path / "variations.h5")
    n = render_variations(
        gen, world_crop_matrix(gen, 32), tmp_path / "variations.h5", tmp_path / "out", 32
    )
    assert n == 6
    index = read_index(tmp_path / "out")
    assert index.paths == [f"images/{i:06d}/{v:03d}.png" for i in (4, 5) for v in range(3)]
    assert index.num_classes == 2 and index.labels[0] == "000"


def test_verification_table(tmp_path):
    paths = []
    for model, accs in {"world_reference_fr": (0.99, 0.95), "langevin": (0.9, 0.8)}.items():
        for name, acc in zip(("lfw", "cfp_fp"), accs):
            path = tmp_path / model / f"{name}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(
                json.dumps({"dataset": name, "accuracy": acc, "std": 0.01, "n_pairs": 6000})
            )
            paths.append(path)
    wide = verification_table(paths, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    assert round(wide.loc["langevin", "lfw"], 2) == 90.0
    assert round(wide.loc["world_reference_fr", "average"], 2) == 97.0
    assert "99.00 ± 1.00" in (tmp_path / "t.md").read_text()
    assert "\\toprule" in (tmp_path / "t.tex").read_text()
