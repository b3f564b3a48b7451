"""NVIDIA network pickles (StyleGAN2-ADA, StyleGAN3's ``stylegan2-*.pkl``), read without running them.

A network pickle is a plain ``pickle.dump`` of ``{'G', 'D', 'G_ema', 'augment_pipe',
'training_set_kwargs'}``. Every network is a ``torch_utils.persistence`` object that reduces to
``_reconstruct_persistent_obj(meta)``, where ``meta`` holds the full source of the module that
defined its class (``module_src``, executed by NVIDIA's loader), its ``class_name`` and its
``state`` (the module's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` with nested
persistent objects, ``_init_kwargs``...). Tensors are torch's ``_rebuild_tensor_v2`` /
``_rebuild_parameter`` of storages that reduce to ``torch.storage._load_from_bytes(blob)``, a
legacy ``torch.save`` of one storage (whose own loader would unpickle it with
``weights_only=False``).

Here ``find_class`` hands out only the globals in :func:`_allowed` and refuses any other by
name before it is called: persistent objects become inert :class:`PersistentStub` records
(``module_src`` is kept as a string and never executed), storage blobs are decoded by
``torch.load(weights_only=True)``, and nothing is imported on behalf of the file.
(``shared/notes/formats.md`` sections 1.1-1.5.)
"""

from __future__ import annotations

import _compat_pickle
import collections
import functools
import importlib
import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brownface.errors import UserError

PERSISTENCE_VERSION = 6  # torch_utils.persistence._version in ADA and StyleGAN3


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access): the items only."""


@dataclass
class PersistentStub:
    """What ``_reconstruct_persistent_obj(meta)`` describes, without building it."""

    class_name: str
    state: dict[str, Any]
    version: Any = None
    module_src: str | None = None  # kept for inspection; never executed


def _reconstruct_persistent_obj(meta: Mapping[str, Any]) -> PersistentStub:
    if not isinstance(meta, Mapping) or meta.get("type") != "class":
        raise pickle.UnpicklingError("persistent object: expected meta with type 'class'")
    state = meta.get("state")
    return PersistentStub(
        class_name=str(meta.get("class_name")),
        state=dict(state) if isinstance(state, Mapping) else {},
        version=meta.get("version"),
        module_src=meta.get("module_src"),
    )


def _load_storage(blob: bytes) -> Any:
    """``torch.storage._load_from_bytes`` with torch's weights-only unpickler (legacy or zip)."""
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


def _rebuild_parameter(
    data: torch.Tensor, requires_grad: bool, backward_hooks: Any, *state: Any
) -> torch.Tensor:
    """Parameters become plain tensors (hooks and Python state are dropped)."""
    return data


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a global that is not on the allow-list (raised before any call)."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


@functools.cache
def _allowed() -> dict[tuple[str, str], object]:
    import numpy as np

    allowed: dict[tuple[str, str], object] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    multiarray = importlib.import_module(
        "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    )
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # NumPy 1 and 2
        allowed[(module, "scalar")] = multiarray.scalar
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
    return allowed


class _NetworkUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _allowed().get((module, name))
        if found is None:
            raise RefusedGlobal(module, name)
        return found


@dataclass
class NetworkPickle:
    """The generator of a network pickle, as data."""

    class_name: str  # e.g. training.networks.Generator
    state_dict: dict[str, torch.Tensor]  # names as NVIDIA's G_ema.state_dict()
    init_args: tuple
    init_kwargs: dict[str, Any]
    module_names: list[str]  # every submodule path, e.g. synthesis.b4.conv1.affine


def _plain(value: Any) -> Any:
    """EasyDicts and OrderedDicts as plain dicts, recursively (config values)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # NumPy scalars
    return value


def _walk(
    stub: PersistentStub,
    prefix: str,
    tensors: dict[str, torch.Tensor],
    modules: list[str],
    path: Path,
) -> None:
    state = stub.state
    for group in ("_parameters", "_buffers"):
        entries = state.get(group) or {}
        if not isinstance(entries, Mapping):
            raise UserError(f"{path}: {prefix or 'G_ema.'}{group} is not a mapping")
        non_persistent = state.get("_non_persistent_buffers_set") or set()
        for name, value in entries.items():
            if value is None or (group == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise UserError(f"{path}: {prefix}{name} is not a tensor")
            tensors[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentStub):
            raise UserError(
                f"{path}: submodule {prefix}{name} is a {type(child).__name__}, "
                "not a persistent network object"
            )
        modules.append(prefix + name)
        _walk(child, f"{prefix}{name}.", tensors, modules, path)


def read_network_pickle(path: str | Path, key: str = "G_ema") -> NetworkPickle:
    """The ``G_ema`` (or ``key``) network of an NVIDIA pickle: its tensors and configuration.

    Raises UserError, one line naming the file, for: a file that is not a pickle or is
    truncated, a global outside the allow-list (named), no ``G_ema``, or a network that is not
    a persistent object of the known version.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such generator checkpoint")
    try:
        with path.open("rb") as f:
            data = _NetworkUnpickler(f).load()
    except RefusedGlobal as refused:
        if refused.module.startswith("dnnlib.tflib"):
            raise UserError(
                f"{path}: a TensorFlow-era StyleGAN2 pickle ({refused.module}.{refused.name}); "
                "brownface reads the PyTorch pickles of StyleGAN2-ADA / StyleGAN3 (NVIDIA's "
                "stylegan2-ada-pytorch legacy.py converts TensorFlow ones)"
            ) from None
        raise UserError(
            f"{path}: refusing to load {refused.module}.{refused.name} from a network pickle "
            "(not on the allow-list; brownface never runs code from checkpoints)"
        ) from None
    except EOFError:
        raise UserError(f"{path}: truncated network pickle (ended early)") from None
    except pickle.UnpicklingError as err:
        if "truncated" in str(err):
            raise UserError(f"{path}: truncated network pickle (ended early)") from None
        raise UserError(f"{path}: not an NVIDIA network pickle ({err})") from None
    except Exception as err:  # pickle raises many kinds for foreign or damaged bytes
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(
            f"{path}: not an NVIDIA network pickle ({type(err).__name__}: {first[:160]})"
        ) from None
    if not isinstance(data, Mapping) or key not in data:
        have = (
            ", ".join(map(repr, list(data)[:6]))
            if isinstance(data, Mapping)
            else type(data).__name__
        )
        raise UserError(f"{path}: no {key!r} network in the pickle (has {have})")
    net = data[key]
    if not isinstance(net, PersistentStub):
        raise UserError(f"{path}: {key} is a {type(net).__name__}, not a persistent network object")
    if net.version != PERSISTENCE_VERSION:
        raise UserError(
            f"{path}: {key} was written by torch_utils.persistence version {net.version!r}; "
            f"expected {PERSISTENCE_VERSION}"
        )
    tensors: dict[str, torch.Tensor] = {}
    modules: list[str] = []
    _walk(net, "", tensors, modules, path)
    init_args = net.state.get("_init_args") or ()
    init_kwargs = net.state.get("_init_kwargs") or {}
    return NetworkPickle(
        class_name=net.class_name,
        state_dict=tensors,
        init_args=tuple(_plain(list(init_args))),
        init_kwargs=_plain(init_kwargs),
        module_names=modules,
    )
