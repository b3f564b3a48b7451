"""Training data: a dataset (``brownface.dataset.layout``) read into batches reproducibly.

Every sample's augmentation draws from its own generator seeded by (seed, epoch, sample), and
the epoch's order from (seed, epoch), so a resumed run, any number of DataLoader workers and
any number of DDP ranks see exactly the same batches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from brownface.dataset.layout import DatasetIndex
from brownface.seeding import torch_generator


def load_image(path: Path, size: int | None = None) -> torch.Tensor:
    """An RGB image as uint8 [3, H, W], resized (antialiased bilinear) to ``size`` if given."""
    with Image.open(path) as im:
        array = np.asarray(im.convert("RGB"))
    image = torch.from_numpy(array.copy()).permute(2, 0, 1)
    if size is not None and image.shape[1:] != (size, size):
        resized = F.interpolate(
            image[None].float(),
            size=(size, size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
        image = resized[0].round().clamp(0, 255).to(torch.uint8)
    return image


class FaceDataset(torch.utils.data.Dataset):
    """Samples (image in [-1, 1] [3, S, S], class) with seeded per-sample augmentation.

    ``cache=True`` decodes every image once into memory (uint8), which is what makes small
    datasets train fast on a CPU.
    """

    def __init__(
        self,
        index: DatasetIndex,
        size: int,  # model input size; images are resized to it
        augment=None,  # callable(image float [3,S,S] in [0,1], generator) -> image, or None
        seed: int = 0,  # combined with epoch and sample for augmentation draws
        cache: bool = False,  # decode everything up front
    ) -> None:
        self.index, self.size, self.augment, self.seed = index, size, augment, seed
        self.epoch = 0
        self.cache = None
        if cache:
            self.cache = torch.stack([self._decode(i) for i in range(len(index))])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _decode(self, i: int) -> torch.Tensor:
        return load_image(self.index.root / self.index.paths[i], self.size)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.cache[i] if self.cache is not None else self._decode(i)
        image = image.float() / 255
        if self.augment is not None:
            image = self.augment(image, torch_generator(self.seed, "train/augment", self.epoch, i))
        return image * 2 - 1, int(self.index.classes[i])


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: a permutation seeded by (seed, epoch)."""
    return torch.randperm(n, generator=torch_generator(seed, "train/order", epoch))


class EpochBatches(torch.utils.data.Sampler):
    """Batches of an epoch's order, for one DDP rank, starting after ``skip`` batches (resume).

    Incomplete last batches are dropped (as in the reference recipe's DDP loaders), so every
    step has the configured batch size and batch statistics stay comparable.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        epoch: int,
        skip: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.skip, self.rank, self.world = skip, rank, world

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch)
        per_rank = self.batch_size
        for b in range(self.skip, self.batches_per_epoch()):
            start = (b * self.world + self.rank) * per_rank
            yield order[start : start + per_rank].tolist()

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.skip
