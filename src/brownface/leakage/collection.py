"""Face collections to embed: every image with an identity label and a name, in a fixed order.

The four sources of real (or any) faces:

* ``image_folder``: ``root/<label>/<image>`` aligned crops (ImageFolder, as CASIA-WebFace or
  MS1M are unpacked), labelled by folder;
* ``generator_frames``: images in the generator's own frame (FFHQ's aligned PNGs for an FFHQ
  StyleGAN2), anywhere under ``root``, each its own identity (FFHQ has one image per person),
  cut with the generator's FR crop when embedded;
* ``bin``: an insightface ``.bin`` verification set (no identities: each image its own);
* ``rendered``: a dataset in the rendered layout (``index.csv``), labelled by its identities.

Images are decoded when read, so a 70k-image tree never sits in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brownface.dataset.layout import read_index
from brownface.errors import UserError
from brownface.evaluate.binfile import decode_image, read_bin_encoded

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SOURCES = ("image_folder", "generator_frames", "bin", "rendered")


@dataclass(frozen=True)
class FaceCollection:
    """Labels and names of a collection's images, and how to decode image ``i``."""

    source: str  # one of SOURCES
    location: str  # the root directory or .bin file
    labels: list[str]
    names: list[str]  # path relative to the root (or "<file>#<i>" for a .bin set)
    _images: Sequence[bytes] | None = None  # encoded images of a .bin set; else read from files

    def __len__(self) -> int:
        return len(self.names)

    @property
    def generator_frame(self) -> bool:
        """Images in the generator's frame, to be cut with its FR crop before embedding."""
        return self.source == "generator_frames"

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 RGB [H, W, 3]."""
        if self._images is not None:
            return decode_image(self._images[i], f"{self.location} image {i}")
        path = Path(self.location) / self.names[i]
        return decode_image(path.read_bytes(), str(path))


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def face_collection(source: str, location: str | Path) -> FaceCollection:
    """The collection at ``location`` read as ``source``; its images in sorted order."""
    where = Path(location)
    if source not in SOURCES:
        raise UserError(
            f"face collection source: expected one of {', '.join(SOURCES)}, got {source!r}"
        )
    if source == "bin":
        encoded = read_bin_encoded(where)
        n = len(encoded.images)
        names = [f"{where.name}#{i}" for i in range(n)]
        return FaceCollection(source, str(where), names, names, encoded.images)
    if source == "rendered":
        index = read_index(where)
        labels = [str(int(i)) for i in index.identities]
        return FaceCollection(source, str(where), labels, list(index.paths))
    if not where.is_dir():
        raise UserError(f"{where}: face collection ({source}): expected a directory of images")
    files = _image_files(where)
    if not files:
        raise UserError(
            f"{where}: face collection ({source}): no {'/'.join(IMAGE_SUFFIXES)} images"
        )
    names = [p.relative_to(where).as_posix() for p in files]
    if source == "image_folder":
        loose = [n for n in names if "/" not in n]
        if loose:
            raise UserError(
                f"{where}: image folder: {loose[0]} is not inside an identity folder "
                "(expected <root>/<label>/<image>)"
            )
        labels = [n.split("/", 1)[0] for n in names]
    else:
        labels = [n.rsplit(".", 1)[0] for n in names]  # each frame its own identity
    return FaceCollection(source, str(where), labels, names)
