"""Write NVIDIA StyleGAN2-ADA network pickles from a brownface StyleGAN2, byte for byte as
``torch_utils.persistence`` would: each network a ``_reconstruct_persistent_obj(meta)`` global
pickled by reference, ``meta`` = {type, version 6, module_src, class_name, state} with the
module's ``__dict__`` as state (nested module states, hook dicts, a set, NumPy float64
attributes, ``_init_args`` / ``_init_kwargs`` with ``dnnlib.util.EasyDict``), tensors through
torch's own reducers (``_rebuild_parameter``, ``_rebuild_tensor_v2``, legacy storage blobs).

The stand-in modules ``torch_utils.persistence`` and ``dnnlib.util`` exist in ``sys.modules``
only while a pickle is written, so loading can never import them.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brownface.models import stylegan2 as sg

#: What a real pickle embeds: the source of training/networks.py. Ours would leave a marker
#: file if anything ever executed it.
MODULE_SRC_TEMPLATE = (
    "import pathlib\n"
    "pathlib.Path({marker!r}).write_text('module_src was executed')\n"
    "class Generator: pass\n"
)


class EasyDict(dict):
    pass


def _reconstruct_persistent_obj(meta):  # never called: loading must not import this module
    raise AssertionError("the stand-in persistence module was imported while loading")


class _Persistent:
    """Reduces as NVIDIA's persistent classes do."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,), None)


@contextlib.contextmanager
def _standin_modules():
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    added = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }
    saved = {name: sys.modules.get(name) for name in added}
    sys.modules.update(added)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


_NVIDIA_CLASS = {
    sg.StyleGAN2: "Generator",
    sg.MappingNetwork: "MappingNetwork",
    sg.SynthesisNetwork: "SynthesisNetwork",
    sg.SynthesisBlock: "SynthesisBlock",
    sg.SynthesisLayer: "SynthesisLayer",
    sg.ToRGBLayer: "ToRGBLayer",
    sg.FullyConnectedLayer: "FullyConnectedLayer",
}


def _state(module: nn.Module, init_kwargs: dict, module_src: str) -> _Persistent:
    children = collections.OrderedDict(
        (name, _state(child, {}, module_src)) for name, child in module._modules.items()
    )
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(
            (k, nn.Parameter(v.detach().clone(), requires_grad=False))
            for k, v in module._parameters.items()
        ),
        "_buffers": collections.OrderedDict(
            (k, v.detach().clone()) for k, v in module._buffers.items()
        ),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": children,
        "_init_args": (),
        "_init_kwargs": init_kwargs,
    }
    for attr in ("weight_gain", "bias_gain"):  # NumPy float64 scalars in real pickles
        if hasattr(module, attr):
            state[attr] = np.float64(getattr(module, attr))
    if isinstance(module, sg.SynthesisLayer):
        state["act_gain"] = np.float64(np.sqrt(2))
        state["conv_clamp"] = module.conv_clamp
    meta = {
        "type": "class",
        "version": 6,
        "module_src": module_src,
        "class_name": _NVIDIA_CLASS[type(module)],  # the bare name, as persistence keeps it
        "state": state,
    }
    return _Persistent(meta)


def init_kwargs(cfg: sg.StyleGAN2Config, c_dim: int = 0) -> dict:
    """``Generator._init_kwargs`` as ADA's train.py and training_loop.py build them (a dict of
    the constructor's keyword arguments; the nested ones are EasyDicts)."""
    return dict(
        z_dim=cfg.z_dim,
        w_dim=cfg.w_dim,
        mapping_kwargs=EasyDict(num_layers=cfg.mapping_layers),
        synthesis_kwargs=EasyDict(
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            num_fp16_res=cfg.num_fp16_res,
            conv_clamp=cfg.conv_clamp,
        ),
        c_dim=c_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
    )


def write_network_pickle(
    net: sg.StyleGAN2,
    path: Path,
    protocol: int = 3,
    marker: Path | None = None,  # where executed module_src would write
    c_dim: int = 0,
    kwargs: dict | None = None,  # replaces the Generator's _init_kwargs
) -> Path:
    """``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}`` as ADA's training loop
    dumps it (``G`` and ``G_ema`` both the given network)."""
    src = MODULE_SRC_TEMPLATE.format(marker=str(marker or path.with_suffix(".executed")))
    with _standin_modules():
        kw = kwargs if kwargs is not None else init_kwargs(net.config, c_dim)
        data = {
            "training_set_kwargs": EasyDict(
                path="ffhq256.zip", resolution=net.config.img_resolution
            ),
            "G": _state(net, kw, src),
            "D": None,
            "G_ema": _state(net, kw, src),
            "augment_pipe": None,
        }
        with path.open("wb") as f:
            pickle.dump(data, f, protocol=protocol)
    return path


def tiny_config(**changes) -> sg.StyleGAN2Config:
    """A StyleGAN2 small enough for CPU tests: 32 px, 32 channels, fp16 layers and clamp."""
    base = dict(
        z_dim=32,
        w_dim=32,
        img_resolution=32,
        mapping_layers=2,
        channel_base=512,
        channel_max=32,
        num_fp16_res=2,
        conv_clamp=256.0,
    )
    return sg.StyleGAN2Config(**(base | changes))


def random_net(cfg: sg.StyleGAN2Config, seed: int = 0) -> sg.StyleGAN2:
    """Random weights, with non-zero noise strengths, biases and w_avg so every term counts."""
    torch.manual_seed(seed)
    net = sg.StyleGAN2(cfg).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if (
                name.endswith(("noise_strength", ".bias"))
                and "affine" not in name
                and "mapping" not in name
            ):
                p.copy_(torch.randn_like(p) * 0.1)
        net.mapping.w_avg.copy_(torch.randn_like(net.mapping.w_avg) * 0.5)
    return net
