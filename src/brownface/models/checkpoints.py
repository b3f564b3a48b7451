"""Reading foreign FR checkpoints without running code from them.

``torch.load`` unpickles, and unpickling can call any importable function. We first try
PyTorch's own ``weights_only=True`` loader (tensors and plain containers only). Checkpoints
that also hold harmless Python objects (a Lightning ``.ckpt`` with an ``argparse.Namespace``
of hyper-parameters, NumPy scalars, paths) fail there, so we retry with an unpickler whose
``find_class`` hands out only the globals on an explicit allow-list and refuses everything
else before it is called. Nothing is ever imported on behalf of a file.

Then: insightface ``backbone.pth`` state dicts, AdaFace Lightning checkpoints, a strict loader
whose error names the mismatching keys in one line, and a streamed sha256 for provenance.
"""

from __future__ import annotations

import _codecs
import _compat_pickle
import argparse
import collections
import functools
import hashlib
import importlib
import pathlib
import pickle
import types
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from brownface.errors import UserError

MAX_KEYS_IN_MESSAGE = 3  # keys of each kind named in a load_strict error


class _AttributeDict(dict):
    """Stand-in for Lightning's ``AttributeDict`` (a dict subclass): the items, not the code."""


# ----------------------------------------------------------------------------------------------
# The allow-list.

_TORCH_REBUILD_FUNCTIONS = (  # what torch.save writes for tensors and parameters
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._tensor._rebuild_from_type_v2",
)
_NUMPY_FUNCTIONS = ("scalar", "_reconstruct")  # in numpy.core.multiarray (NumPy 2: numpy._core)


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], object]:
    """(module, name) as written in a pickle -> the object handed to the unpickler."""
    import numpy as np  # torch's own dependency; imported here to keep the module light

    allowed: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "Counter"): collections.Counter,  # MultiStepLR milestones
        ("argparse", "Namespace"): argparse.Namespace,  # Lightning / AdaFace hyper-parameters
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
        ("_codecs", "encode"): _codecs.encode,  # bytes under pickle protocol 2
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): nn.Parameter,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for qualified in _TORCH_REBUILD_FUNCTIONS:
        module, name = qualified.rsplit(".", 1)
        function = getattr(importlib.import_module(module), name, None)
        if function is not None:  # older torch versions lack some of them
            allowed[(module, name)] = function
    multiarray = importlib.import_module(
        "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    )
    for name in _NUMPY_FUNCTIONS:
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # NumPy 1 and 2
            allowed[(module, name)] = getattr(multiarray, name)
    # Paths become pure paths: portable (a WindowsPath can't be built on Linux) and inert.
    for module in ("pathlib", "pathlib._local"):  # Python >= 3.13 writes pathlib._local
        for name, cls in [
            ("PosixPath", pathlib.PurePosixPath),
            ("PurePosixPath", pathlib.PurePosixPath),
            ("WindowsPath", pathlib.PureWindowsPath),
            ("PureWindowsPath", pathlib.PureWindowsPath),
        ]:
            allowed[(module, name)] = cls
    for module in (
        "pytorch_lightning.utilities.parsing",
        "lightning.fabric.utilities.data",
        "lightning_fabric.utilities.data",
    ):
        allowed[(module, "AttributeDict")] = _AttributeDict
    return allowed


def _torch_constant(module: str, name: str) -> object | None:
    """torch dtypes, layouts, memory formats, qschemes and storage classes, else None."""
    if module != "torch":
        return None
    value = getattr(torch, name, None)
    if isinstance(value, (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)):
        return value
    storages = (torch.UntypedStorage, torch.storage.TypedStorage)
    if isinstance(value, type) and issubclass(value, storages):
        return value
    return None


class _RefusedGlobal(Exception):
    """A pickle asked for a global that is not on the allow-list (raised before any call)."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals come only from the allow-list."""

    def find_class(self, module: str, name: str) -> object:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # protocol 2: __builtin__
        found = _allowed_globals().get((module, name)) or _torch_constant(module, name)
        if found is None:
            raise _RefusedGlobal(module, name)
        return found


def _restricted_load(file, **kwargs) -> object:
    return _RestrictedUnpickler(file, **kwargs).load()


# torch.load(pickle_module=...) uses exactly these two attributes (and __name__).
_RESTRICTED_PICKLE = types.ModuleType("brownface_restricted_pickle")
_RESTRICTED_PICKLE.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
_RESTRICTED_PICKLE.load = _restricted_load  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------
# Files.


def _brief(err: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_torch_file(path: str | Path) -> object:
    """Everything in a ``torch.save`` file, on CPU, without running code from it.

    Raises UserError (one line naming ``path``) for a missing, truncated or non-torch file
    and for a pickle that asks for a global outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # plain pickles of protocol > 2 warn here; not news
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # most likely a global outside torch's weights-only set: retry with ours
    except Exception as err:  # torch raises many kinds for a damaged file
        raise UserError(f"{path}: not a readable torch checkpoint ({_brief(err)})") from None
    try:
        return torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_RESTRICTED_PICKLE
        )
    except _RefusedGlobal as refused:
        raise UserError(
            f"{path}: refusing to load {refused.module}.{refused.name} from a checkpoint "
            "(not on the allow-list)"
        ) from None
    except Exception as err:
        raise UserError(f"{path}: not a readable torch checkpoint ({_brief(err)})") from None


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be gigabytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(chunk_bytes):
                digest.update(chunk)
    except OSError as err:
        raise UserError(f"{path}: cannot read for sha256 ({_brief(err)})") from None
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Checkpoint kinds.


def _tensor_dict(path: Path, obj: Mapping, what: str) -> dict[str, torch.Tensor]:
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: {what} entry {key!r} is not a named tensor")
    return dict(obj)


def load_insightface_backbone(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an insightface ``arcface_torch`` backbone.

    Accepts the released ``backbone.pth`` / ``model.pt`` (a bare state dict) and the resume
    ``checkpoint_gpu_{rank}.pt`` (its ``state_dict_backbone``); strips the ``module.`` prefix
    of weights saved from a DistributedDataParallel wrapper.
    """
    path = Path(path)
    obj = load_torch_file(path)
    if isinstance(obj, Mapping) and "state_dict_backbone" in obj:
        obj = obj["state_dict_backbone"]
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(
            f"{path}: expected an insightface backbone state dict (or a resume checkpoint "
            f"with 'state_dict_backbone'), got {type(obj).__name__}"
        )
    state = _tensor_dict(path, obj, "state dict")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_adaface_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone weights of an AdaFace Lightning checkpoint: ``state_dict`` ``model.*`` keys.

    The ``model.`` prefix is stripped; the margin head (``head.kernel``) and everything else
    in the checkpoint is dropped.
    """
    path = Path(path)
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise UserError(f"{path}: not an AdaFace checkpoint: no 'state_dict' dictionary")
    state = ckpt["state_dict"]
    model = {k[len("model.") :]: v for k, v in state.items() if str(k).startswith("model.")}
    if not model:
        seen = ", ".join(str(k) for k in list(state)[:MAX_KEYS_IN_MESSAGE]) or "nothing"
        raise UserError(f"{path}: 'state_dict' has no 'model.*' backbone keys (has {seen})")
    return _tensor_dict(path, model, "state_dict model.*")


def _some(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_IN_MESSAGE])
    more = len(keys) - MAX_KEYS_IN_MESSAGE
    return f"{shown} (+{more} more)" if more > 0 else shown


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``model`` with strict=True; on any mismatch raise one UserError.

    The message names ``source``, the model (its ``arch`` attribute, else its class) and the
    first few missing keys, unexpected keys and shape mismatches.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} file {list(state_dict[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        f"{label} {_some(keys)}"
        for label, keys in [("missing", missing), ("unexpected", unexpected), ("shape", shapes)]
        if keys
    ]
    if problems:
        arch = getattr(model, "arch", type(model).__name__)
        raise UserError(f"{source}: does not fit {arch}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
