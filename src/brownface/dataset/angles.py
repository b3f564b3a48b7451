"""The two angle distributions a synthetic FR dataset is judged by, from its variations store.

* inter-class: for each identity, the angle between its reference embedding and the nearest
  other identity's reference (the separation Langevin pushes above the ICT);
* intra-class: for each variation, the angle between its embedding and its identity's
  reference (the spread Dispersion / DisCo bound by the ICT).

Both in degrees, from the embeddings the samplers stored (the reference FR's), so the numbers
describe the dataset the trainer sees without re-embedding any image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from brownface.sampling.geometry import angle, cosines, nearest_angles
from brownface.store import VariationStore

BLOCK = 4096  # identities per block of the nearest-neighbour search


@dataclass
class DatasetAngles:
    identity: np.ndarray  # int64 [N]
    inter_nearest: np.ndarray  # float64 [N] degrees, nearest other identity's reference
    intra_to_reference: np.ndarray  # float64 [N, V - 1] degrees, variation to its reference


def dataset_angles(store: VariationStore) -> DatasetAngles:
    """Inter-class nearest and intra-class to-reference angles of a variations store."""
    e = torch.from_numpy(np.asarray(store.embedding, dtype=np.float32)).double()
    reference = e[:, 0]
    inter = nearest_angles(reference, BLOCK)
    intra = angle(cosines(e[:, 1:], reference[:, None, :], pairwise=False))
    return DatasetAngles(
        identity=np.asarray(store.identity, dtype=np.int64),
        inter_nearest=np.rad2deg(inter.numpy()),
        intra_to_reference=np.rad2deg(intra.numpy()),
    )
