"""insightface ``.bin`` verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...).

Format (insightface ``eval/verification.py``): a pickle of the 2-tuple ``(bins, issame)``.
``bins`` holds ``2 * len(issame)`` encoded image files (JPEG/PNG); entries ``2i`` and ``2i+1``
form pair ``i`` and ``issame[i]`` is a bool. Entries are ``bytes`` in most files but ``uint8``
NumPy arrays in others: 1-D (insightface's ``small_lfw.bin``) or ``(n_bytes, 1)``, the shape
``cv2.imencode`` returns, in files packed with OpenCV; every shape is accepted (the bytes in C
order), as is ``bytearray``. Files written under Python 2 hold ``str`` entries and only load with
``encoding="bytes"``.

A pickle can run arbitrary code on load, and these files come from the internet, so they are read
with an allow-list unpickler that can only rebuild NumPy arrays, dtypes and byte strings.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from brownface.errors import UserError

try:  # NumPy >= 2 (and 1.26, which ships a forward-compatibility alias)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy < 1.26
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

# Everything a pickle of (list of bytes / uint8 arrays, list of bools) may reference. Python-2
# and protocol-2 pickles name builtins ``__builtin__`` and encode bytes via ``_codecs.encode``;
# NumPy 1 writes ``numpy.core``, NumPy 2 ``numpy._core``; protocol 5 uses ``_frombuffer``;
# ``scalar`` rebuilds numpy.bool_ values some packers store in ``issame``.
_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("__builtin__", "bytes"): bytes,
    ("__builtin__", "bytearray"): bytearray,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numeric._frombuffer


class _ImageListUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in :data:`_ALLOWED`."""

    def __init__(self, file: io.BufferedIOBase, source: Path, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UserError(
                f"{self._source}: refusing to unpickle {module}.{name} (not an image list)"
            ) from None


@dataclass
class VerificationSet:
    """Decoded pairs: ``images[2i]`` and ``images[2i+1]`` are pair ``i`` (HxWx3 uint8 RGB)."""

    images: list[np.ndarray]
    issame: np.ndarray

    def __len__(self) -> int:
        return len(self.issame)


@dataclass
class EncodedVerificationSet:
    """The same set with each image still as its encoded JPEG/PNG bytes."""

    images: list[bytes]
    issame: np.ndarray

    def __len__(self) -> int:
        return len(self.issame)


def write_bin(
    path: str | Path, images: Sequence[bytes], issame: Sequence[bool], protocol: int = 4
) -> None:
    """Write encoded images and pair labels as an insightface ``.bin`` pickle."""
    if len(images) != 2 * len(issame):
        raise ValueError(
            f"a .bin set needs 2 images per pair: got {len(images)} images, {len(issame)} pairs"
        )
    bins: list[bytes] = []
    for i, entry in enumerate(images):
        if not isinstance(entry, bytes | bytearray | memoryview):
            raise ValueError(f"image {i} must be encoded bytes, got {type(entry).__name__}")
        bins.append(bytes(entry))
    labels = [bool(x) for x in issame]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump((bins, labels), f, protocol=protocol)


def _unpickle(path: Path) -> object:
    if not path.is_file():
        raise UserError(f"{path}: verification set not found")
    data = path.read_bytes()
    try:
        try:
            return _ImageListUnpickler(io.BytesIO(data), path).load()
        except UnicodeDecodeError:  # Python-2 pickle with binary str entries
            return _ImageListUnpickler(io.BytesIO(data), path, encoding="bytes").load()
    except UserError:
        raise
    except Exception as exc:  # any other failure means a corrupt or foreign file
        raise UserError(
            f"{path}: not a readable .bin verification set ({type(exc).__name__}: {exc})"
        ) from None


def _as_bytes(entry: object, path: Path, index: int) -> bytes:
    if isinstance(entry, bytes):
        return entry
    if isinstance(entry, bytearray):
        return bytes(entry)
    if isinstance(entry, np.ndarray) and entry.dtype == np.uint8:
        return entry.tobytes()  # any shape: cv2.imencode returns (n_bytes, 1)
    what = type(entry).__name__
    if isinstance(entry, np.ndarray):
        what = f"ndarray {entry.dtype} {entry.shape}"
    raise UserError(f"{path}: image {index} must be encoded bytes or a uint8 array, got {what}")


def _as_labels(raw: object, path: Path) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1:
            raise UserError(f"{path}: issame must be 1-D, got shape {raw.shape}")
        items = raw.tolist()
    elif isinstance(raw, list | tuple):
        items = list(raw)
    else:
        raise UserError(f"{path}: issame must be a list of bools, got {type(raw).__name__}")
    for i, x in enumerate(items):
        if not isinstance(x, bool | np.bool_ | int | np.integer) or x not in (0, 1):
            raise UserError(f"{path}: issame[{i}] must be a bool, got {x!r}")
    return np.asarray([bool(x) for x in items], dtype=bool)


def read_bin_encoded(path: str | Path) -> EncodedVerificationSet:
    """Load a ``.bin`` set without decoding the images (structure checks only)."""
    path = Path(path)
    obj = _unpickle(path)
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        what = type(obj).__name__ + (
            f" of length {len(obj)}" if isinstance(obj, tuple | list) else ""
        )
        raise UserError(f"{path}: expected a pickled (images, issame) pair, got {what}")
    raw_images, raw_issame = obj
    if not isinstance(raw_images, list | tuple):
        raise UserError(
            f"{path}: images must be a list of encoded images, got {type(raw_images).__name__}"
        )
    issame = _as_labels(raw_issame, path)
    if len(raw_images) != 2 * len(issame):
        raise UserError(
            f"{path}: expected 2 images per pair, got {len(raw_images)} images "
            f"for {len(issame)} pairs"
        )
    images = [_as_bytes(entry, path, i) for i, entry in enumerate(raw_images)]
    return EncodedVerificationSet(images=images, issame=issame)


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Decode JPEG/PNG bytes to an HxWx3 uint8 RGB array (Pillow, like insightface's loader)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{source}: not a decodable JPEG/PNG image ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8)


def read_bin(path: str | Path) -> VerificationSet:
    """Load a ``.bin`` set and decode every image to RGB."""
    path = Path(path)
    encoded = read_bin_encoded(path)
    images = [decode_image(b, f"{path} image {i}") for i, b in enumerate(encoded.images)]
    return VerificationSet(images=images, issame=encoded.issame)
