"""StyleGAN2 weights from the files users have: NVIDIA pickles, rosinality ``.pt``, ``generator.pt``.

Each reader returns a :class:`StyleGAN2Weights` (the architecture and a state dict with
NVIDIA's names) without running code from the file:

* NVIDIA network pickles (``*.pkl``): ``G_ema`` through :mod:`brownface.models.nvidia_pickle`,
  the architecture from its ``_init_kwargs``;
* rosinality/stylegan2-pytorch checkpoints (``g_ema`` state dict, ``latent_avg``), converted
  key by key (``shared/notes/formats.md`` section 2), the architecture from the shapes;
* brownface ``generator.pt`` (:func:`save_generator_pt`): the state dict and the architecture as
  plain data, loaded by ``torch.load(weights_only=True)`` in a fraction of a second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from brownface.errors import UserError
from brownface.models.checkpoints import load_torch_file, sha256_file
from brownface.models.nvidia_pickle import read_network_pickle
from brownface.models.stylegan2 import StyleGAN2, StyleGAN2Config, parameter_count
from brownface.store import atomic_path

GENERATOR_PT_FORMAT = "brownface-generator"
GENERATOR_PT_VERSION = 1
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class StyleGAN2Weights:
    config: StyleGAN2Config
    state_dict: dict[str, torch.Tensor]
    source_format: str  # nvidia-pickle | rosinality | brownface-generator
    source: dict[str, Any] = field(default_factory=dict)  # provenance of converted files

    def build(self, path: str | Path) -> StyleGAN2:
        """The network with these weights (strict: every name and shape must match)."""
        net = StyleGAN2(self.config)
        expected = net.state_dict()
        missing = [k for k in expected if k not in self.state_dict]
        unexpected = [k for k in self.state_dict if k not in expected]
        wrong = [
            f"{k} {list(self.state_dict[k].shape)} (expected {list(v.shape)})"
            for k, v in expected.items()
            if k in self.state_dict and self.state_dict[k].shape != v.shape
        ]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing[:3])}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected[:3])}")
            if wrong:
                parts.append(f"wrong shape {', '.join(wrong[:3])}")
            raise UserError(
                f"{path}: {self.source_format} weights do not fit the StyleGAN2 architecture "
                f"its config describes: {'; '.join(parts)}"
            )
        net.load_state_dict({k: v.to(torch.float32) for k, v in self.state_dict.items()})
        return net

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "format": self.source_format,
            "architecture": f"StyleGAN2 {cfg.img_resolution}x{cfg.img_resolution}",
            "z_dim": cfg.z_dim,
            "w_dim": cfg.w_dim,
            "num_ws": cfg.num_ws,
            "mapping_layers": cfg.mapping_layers,
            "channel_base": cfg.channel_base,
            "channel_max": cfg.channel_max,
            "num_fp16_res": cfg.num_fp16_res,
            "conv_clamp": cfg.conv_clamp,
            "parameters": sum(
                v.numel() for k, v in self.state_dict.items() if not _is_buffer_name(k)
            ),
        }


def _is_buffer_name(key: str) -> bool:
    return key.endswith(("resample_filter", "noise_const", "w_avg"))


# ---------------------------------------------------------------------------------------------
# NVIDIA pickles.


def read_nvidia_pickle(path: str | Path) -> StyleGAN2Weights:
    path = Path(path)
    net = read_network_pickle(path)
    names = net.state_dict
    if any(re.match(r"synthesis\.(L\d+_|input\.)", key) for key in names):
        raise UserError(f"{path}: StyleGAN3 (alias-free) generators are not supported yet")
    if net.class_name.rsplit(".", 1)[-1] != "Generator":  # persistence keeps the bare name
        raise UserError(f"{path}: G_ema is a {net.class_name}, expected a StyleGAN2 Generator")
    config = StyleGAN2Config.from_init_kwargs(net.init_args, net.init_kwargs)
    state = {k: v for k, v in names.items() if not k.startswith("mapping.embed.")}
    return StyleGAN2Weights(config, state, "nvidia-pickle")


# ---------------------------------------------------------------------------------------------
# rosinality/stylegan2-pytorch.

_ROS_LAYER = {  # rosinality StyledConv entry -> NVIDIA SynthesisLayer entry
    "conv.weight": "weight",
    "conv.modulation.weight": "affine.weight",
    "conv.modulation.bias": "affine.bias",
    "noise.weight": "noise_strength",
    "activate.bias": "bias",
}
_ROS_TORGB = {
    "conv.weight": "weight",
    "conv.modulation.weight": "affine.weight",
    "conv.modulation.bias": "affine.bias",
    "bias": "bias",
}


def _infer_channels(channels: dict[int, int], path: Path) -> tuple[int, int]:
    """channel_base and channel_max that give these per-resolution channel counts."""
    top = max(channels.values())
    for res in sorted(channels, reverse=True):
        if channels[res] < top:
            base = channels[res] * res
            break
    else:
        base = top * max(channels)
    config_channels = {res: min(base // res, top) for res in channels}
    if config_channels != channels:
        raise UserError(
            f"{path}: rosinality channel counts {channels} follow no channel_base/channel_max"
        )
    return base, top


def convert_rosinality(
    g_ema: Mapping[str, torch.Tensor], latent_avg: torch.Tensor | None, path: Path
) -> StyleGAN2Weights:
    """NVIDIA-named weights of a rosinality ``g_ema`` state dict (notes section 2)."""
    g = dict(g_ema)
    if "input.input" not in g or "style.1.weight" not in g:
        raise UserError(
            f"{path}: not a rosinality StyleGAN2 g_ema (no input.input / style.1.weight)"
        )
    mapping_layers = sum(1 for k in g if re.fullmatch(r"style\.\d+\.weight", k))
    w_dim = g["style.1.weight"].shape[0]
    n_up = sum(1 for k in g if re.fullmatch(r"to_rgbs\.\d+\.bias", k))
    resolution = 4 * 2**n_up
    channels = {4: g["input.input"].shape[1]}
    for k in range(n_up):
        channels[8 * 2**k] = g[f"convs.{2 * k}.conv.weight"].shape[1]
    base, top = _infer_channels(channels, path)
    config = StyleGAN2Config(
        z_dim=w_dim,
        w_dim=w_dim,
        img_resolution=resolution,
        img_channels=g["to_rgb1.conv.weight"].shape[1],
        mapping_layers=mapping_layers,
        channel_base=base,
        channel_max=top,
        conv_clamp=None,  # rosinality has no clamp
    )
    out: dict[str, torch.Tensor] = {}
    for i in range(mapping_layers):
        out[f"mapping.fc{i}.weight"] = g[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = g[f"style.{i + 1}.bias"]
    out["mapping.w_avg"] = (
        latent_avg.reshape(-1).float() if latent_avg is not None else torch.zeros(w_dim)
    )
    out["synthesis.b4.const"] = g["input.input"][0]

    def layer(src: str, dst: str, noise: str) -> None:
        for a, b in _ROS_LAYER.items():
            value = g[f"{src}.{a}"]
            if a == "conv.weight":  # rosinality scales by 1/sqrt(fan_in) before demodulating
                value = value[0] / math.sqrt(value[0][0].numel())
            elif a == "noise.weight":
                value = value.reshape([])
            out[f"{dst}.{b}"] = value
        out[f"{dst}.noise_const"] = g[noise].reshape(g[noise].shape[-2:])

    def torgb(src: str, dst: str) -> None:
        for a, b in _ROS_TORGB.items():
            value = g[f"{src}.{a}"]
            if a == "conv.weight":  # [1, 3, C, 1, 1]; no demodulation, so no rescaling
                value = value[0]
            elif a == "bias":  # [1, 3, 1, 1]
                value = value.reshape(-1)
            out[f"{dst}.{b}"] = value

    reference = StyleGAN2(config).state_dict()
    layer("conv1", "synthesis.b4.conv1", "noises.noise_0")
    torgb("to_rgb1", "synthesis.b4.torgb")
    for k in range(n_up):
        res = 8 * 2**k
        layer(f"convs.{2 * k}", f"synthesis.b{res}.conv0", f"noises.noise_{2 * k + 1}")
        layer(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", f"noises.noise_{2 * k + 2}")
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
    for key, value in reference.items():  # the FIR filters: [1, 3, 3, 1] as in rosinality
        if key.endswith("resample_filter"):
            out[key] = value
    return StyleGAN2Weights(config, out, "rosinality")


def read_rosinality(path: str | Path) -> StyleGAN2Weights:
    path = Path(path)
    ckpt = load_torch_file(path)
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("g_ema"), Mapping):
        raise UserError(f"{path}: not a rosinality checkpoint: no 'g_ema' state dict")
    return convert_rosinality(ckpt["g_ema"], ckpt.get("latent_avg"), path)


# ---------------------------------------------------------------------------------------------
# brownface generator.pt.


def save_generator_pt(weights: StyleGAN2Weights, out: str | Path) -> None:
    """A plain torch file: state dict + architecture + provenance (``weights_only``-loadable)."""
    payload = {
        "format": GENERATOR_PT_FORMAT,
        "version": GENERATOR_PT_VERSION,
        "kind": "stylegan2",
        "config": weights.config.to_dict(),
        "source": dict(weights.source),
        "state_dict": {k: v.contiguous() for k, v in weights.state_dict.items()},
    }
    with atomic_path(Path(out)) as tmp:
        torch.save(payload, tmp)


def read_generator_pt(path: str | Path) -> StyleGAN2Weights:
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{path}: not a readable generator.pt ({type(err).__name__})") from None
    if not isinstance(data, Mapping) or data.get("format") != GENERATOR_PT_FORMAT:
        raise UserError(f"{path}: not a brownface generator.pt (format {GENERATOR_PT_FORMAT!r})")
    if data.get("version") != GENERATOR_PT_VERSION:
        raise UserError(f"{path}: generator.pt version {data.get('version')!r}; expected 1")
    config = StyleGAN2Config.from_dict(data["config"])
    return StyleGAN2Weights(
        config, dict(data["state_dict"]), GENERATOR_PT_FORMAT, dict(data.get("source") or {})
    )


# ---------------------------------------------------------------------------------------------


def read_stylegan2(path: str | Path) -> StyleGAN2Weights:
    """Weights from any supported file, told apart by content, not by name."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such generator checkpoint")
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        raise UserError(f"{path}: empty file, not a generator checkpoint")
    if head.startswith(ZIP_MAGIC):  # torch.save: rosinality or brownface
        data_head = _zip_kind(path)
        return (
            read_generator_pt(path) if data_head == GENERATOR_PT_FORMAT else read_rosinality(path)
        )
    if head[:2] in PICKLE_MAGIC:
        return read_nvidia_pickle(path)
    raise UserError(
        f"{path}: not a generator checkpoint (expected an NVIDIA .pkl, a rosinality .pt or a "
        "brownface generator.pt)"
    )


def _zip_kind(path: Path) -> str | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # rosinality files hold an argparse Namespace: not weights-only
    return data.get("format") if isinstance(data, Mapping) else None


def convert(path: str | Path, out: str | Path) -> StyleGAN2Weights:
    """Read any supported checkpoint and write it as a brownface generator.pt."""
    weights = read_stylegan2(path)
    weights.build(path)  # fail now, not at first use, if the weights do not fit
    weights.source = {
        "path": str(path),
        "sha256": sha256_file(path),
        "format": weights.source_format,
    }
    save_generator_pt(weights, out)
    return weights


__all__ = [
    "StyleGAN2Weights",
    "convert",
    "parameter_count",
    "read_generator_pt",
    "read_nvidia_pickle",
    "read_rosinality",
    "read_stylegan2",
    "save_generator_pt",
]
