"""StyleGAN2(-ADA) generator in plain PyTorch, with NVIDIA's parameter and buffer names.

The network is built from a checkpoint's own configuration (:class:`StyleGAN2Config`, read from
the pickle's ``_init_kwargs``) and computes what NVIDIA's reference (non-CUDA) ops compute, in
float32, without custom ops, on any device:

* mapping: z / sqrt(mean(z^2) + 1e-8), then fully connected layers with learning-rate
  multiplier 0.01 (weight x 0.01/sqrt(in), bias x 0.01), leaky ReLU(0.2) x sqrt(2); broadcast
  to ``num_ws``; truncation w_avg + psi (w - w_avg), optionally on the first ``cutoff`` ws only;
* modulated convolution: w' = W s, demodulated by rsqrt(sum w'^2 + 1e-8) per output channel,
  as one grouped convolution over the batch; the up-sampling conv is a stride-2 transposed
  convolution followed by the [1, 3, 3, 1] FIR filter with gain 4 and padding 1;
* per-pixel noise (const / random / none) x noise_strength, bias, leaky ReLU x sqrt(2), clamp to
  +-conv_clamp; ToRGB is a 1x1 modulated conv without demodulation (styles x 1/sqrt(C)) plus a
  clamped bias; the 'skip' architecture sums every block's RGB into an up-sampled image.

Module and tensor names equal NVIDIA's ``G_ema.state_dict()`` keys (``synthesis.b4.const``,
``synthesis.b8.conv0.affine.weight``, ``mapping.fc0.weight``, ``mapping.w_avg``...), so a
pickle's tensors load into :class:`StyleGAN2` with a strict ``load_state_dict``.
:class:`StyleGAN2Generator` wraps it in the interface every stage uses (generator kind
``stylegan2``). Written from the published equations and the notes in
``shared/notes/formats.md`` section 1.9, not from NVIDIA's code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from brownface.errors import UserError
from brownface.models.align import ARCFACE_TEMPLATE_112
from brownface.models.generator import FixedBox, GeneratorBase, GeneratorSpec

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8
NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class StyleGAN2Config:
    """A StyleGAN2 generator's architecture (NVIDIA's ``Generator`` keyword arguments)."""

    z_dim: int = 512
    w_dim: int = 512
    img_resolution: int = 256
    img_channels: int = 3
    mapping_layers: int = 8  # mapping_kwargs.num_layers
    mapping_lr_multiplier: float = 0.01  # mapping_kwargs.lr_multiplier
    layer_features: int | None = None  # mapping_kwargs.layer_features (None = w_dim)
    channel_base: int = 32768  # synthesis_kwargs.channel_base
    channel_max: int = 512
    num_fp16_res: int = 0  # only recorded: brownface computes in float32 unless autocast
    conv_clamp: float | None = None
    resample_filter: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)
    architecture: str = "skip"
    use_noise: bool = True

    def __post_init__(self) -> None:
        log2 = math.log2(self.img_resolution)
        if self.img_resolution < 4 or log2 != int(log2):
            raise UserError(
                f"stylegan2 img_resolution: expected a power of two >= 4, got {self.img_resolution}"
            )
        if self.architecture != "skip":
            raise UserError(
                f"stylegan2 architecture: only 'skip' generators are supported, "
                f"got {self.architecture!r}"
            )
        if self.mapping_layers < 1:
            raise UserError(
                f"stylegan2 mapping num_layers: expected >= 1, got {self.mapping_layers}"
            )
        object.__setattr__(self, "resample_filter", tuple(float(v) for v in self.resample_filter))

    @property
    def block_resolutions(self) -> list[int]:
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    def channels(self, resolution: int) -> int:
        return min(self.channel_base // resolution, self.channel_max)

    @property
    def num_ws(self) -> int:
        """One w per conv layer plus one for the last ToRGB: 14 at 256, 18 at 1024."""
        return 2 * len(self.block_resolutions)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["resample_filter"] = list(self.resample_filter)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StyleGAN2Config:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"stylegan2 config: unknown key {unknown[0]!r}")
        return cls(**data)

    @classmethod
    def from_init_kwargs(
        cls, init_args: Sequence[Any], init_kwargs: Mapping[str, Any]
    ) -> StyleGAN2Config:
        """The config of NVIDIA's ``Generator(z_dim, c_dim, w_dim, img_resolution, img_channels,
        mapping_kwargs, synthesis_kwargs)`` (ADA) or ``(..., mapping_kwargs, **synthesis_kwargs)``
        (StyleGAN3's ``networks_stylegan2``), as recorded in a pickle."""
        names = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
        kwargs = dict(zip(names, init_args, strict=False)) | dict(init_kwargs)
        mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
        synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
        c_dim = int(kwargs.pop("c_dim", 0) or 0)
        if c_dim:
            raise UserError(
                f"conditional StyleGAN2 generators (c_dim = {c_dim}) are not supported: "
                "brownface samples identities without class labels"
            )
        core = {key: kwargs.pop(key) for key in names if key in kwargs}
        synthesis |= kwargs  # StyleGAN3's copy takes the synthesis settings at top level
        for key in ("z_dim", "w_dim", "img_resolution"):
            if key not in core:
                raise UserError(f"stylegan2 pickle: G_ema._init_kwargs has no {key!r}")
        if (
            mapping.get("activation", "lrelu") != "lrelu"
            or synthesis.get("activation", "lrelu") != "lrelu"
        ):
            raise UserError("stylegan2 pickle: only leaky-ReLU ('lrelu') generators are supported")
        return cls(
            z_dim=int(core["z_dim"]),
            w_dim=int(core["w_dim"]),
            img_resolution=int(core["img_resolution"]),
            img_channels=int(core.get("img_channels", 3)),
            mapping_layers=int(mapping.get("num_layers", 8)),
            mapping_lr_multiplier=float(mapping.get("lr_multiplier", 0.01)),
            layer_features=mapping.get("layer_features"),
            channel_base=int(synthesis.get("channel_base", 32768)),
            channel_max=int(synthesis.get("channel_max", 512)),
            num_fp16_res=int(synthesis.get("num_fp16_res", 0)),
            conv_clamp=None
            if synthesis.get("conv_clamp") is None
            else float(synthesis["conv_clamp"]),
            resample_filter=tuple(synthesis.get("resample_filter", (1, 3, 3, 1))),
            architecture=str(synthesis.get("architecture", "skip")),
            use_noise=bool(synthesis.get("use_noise", True)),
        )


# ---------------------------------------------------------------------------------------------
# Ops: written here in plain PyTorch (NVIDIA's are custom CUDA kernels with slow fallbacks).


def fir_filter(taps: Sequence[float]) -> torch.Tensor:
    """The separable 2-D FIR filter of 1-D ``taps``, normalised to sum 1 (a [k, k] buffer)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _depthwise_fir(
    x: torch.Tensor, f: torch.Tensor, gain: float, pad: tuple[int, int, int, int]
) -> torch.Tensor:
    """Pad (left, right, top, bottom; negative crops), then convolve every channel with
    ``f * gain`` (a true convolution: the filter is flipped, which matters only for asymmetric
    filters)."""
    channels = x.shape[1]
    kernel = (f * gain).to(x.dtype).flip([0, 1])
    kernel = kernel[None, None].expand(channels, 1, *f.shape)
    left, right, top, bottom = pad
    if left == right == top == bottom >= 0:  # let the convolution pad: no padded copy
        return F.conv2d(x, kernel, padding=left, groups=channels)
    return F.conv2d(F.pad(x, list(pad)), kernel, groups=channels)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x up-sampling: zero insertion (samples at even positions), then the FIR with gain 4.

    The samples are written straight into the zero-padded buffer the FIR reads (padding
    (k + 1) // 2 before and (k - 2) // 2 after, which brings 2H + k - 1 back to 2H).
    """
    b, c, h, w = x.shape
    k = f.shape[-1]
    before, after = (k + 1) // 2, (k - 2) // 2
    up = x.new_zeros(b, c, 2 * h + before + after, 2 * w + before + after)
    up[:, :, before : before + 2 * h : 2, before : before + 2 * w : 2] = x
    return _depthwise_fir(up, f, 4.0, (0, 0, 0, 0))


def modulated_conv2d(
    x: torch.Tensor,  # [B, I, H, W]
    weight: torch.Tensor,  # [O, I, k, k]
    styles: torch.Tensor,  # [B, I]
    demodulate: bool = True,
    up: bool = False,  # 2x up-sampling (transposed conv, then the FIR ``resample_filter``)
    resample_filter: torch.Tensor | None = None,
    fused: bool = True,
) -> torch.Tensor:
    """Weights scaled per sample by its styles (and demodulated), as one grouped convolution;
    or, not ``fused``, the same linear map with the modulation moved onto the activations
    (see :func:`_modulated_conv2d_activations`)."""
    if not fused:
        return _modulated_conv2d_activations(x, weight, styles, demodulate, up, resample_filter)
    b, in_ch, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    wts = weight[None] * styles[:, None, :, None, None]  # [B, O, I, k, k]
    if demodulate:
        d = (wts.square().sum(dim=[2, 3, 4]) + DEMOD_EPS).rsqrt()[:, :, None, None, None]
        wts = wts.mul_(d) if _inplace() else wts * d
    x = x.reshape(1, b * in_ch, h, w)
    if not up:
        out = F.conv2d(x, wts.reshape(b * out_ch, in_ch, kh, kw), padding=kh // 2, groups=b)
    else:
        # conv_transpose2d wants [in, out/groups, k, k]: per sample [I, O, k, k].
        wts = wts.transpose(1, 2).reshape(b * in_ch, out_ch, kh, kw)
        out = F.conv_transpose2d(x, wts, stride=2, groups=b)  # [1, B*O, 2H+1, 2W+1] for k=3
        assert resample_filter is not None
        # Padding of the FIR after the transposed conv: NVIDIA's conv2d_resample paddings for
        # up = 2 (1 on each side for a 3x3 kernel and 4 taps), so the output is exactly 2H.
        fw = resample_filter.shape[-1]
        p0 = kh // 2 + (fw + 1) // 2 - (kh - 1)
        p1 = kh // 2 + (fw - 2) // 2 - (kh - 2)
        out = _depthwise_fir(out, resample_filter, 4.0, (p0, p1, p0, p1))
    return out.reshape(b, out_ch, *out.shape[2:])


def _modulated_conv2d_activations(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool,
    up: bool,
    resample_filter: torch.Tensor | None,
) -> torch.Tensor:
    """conv(x * s, W) * d: the modulated convolution with one shared weight for the batch.

    NVIDIA's ``fused_modconv=False`` (their training path), the same linear map as the fused
    one: scaling input channel i by s_i equals scaling the weights' input channel i, and
    demodulation scales each output channel o by d_o (:func:`demodulation`). The convolution
    is a plain batched one, and with the weights fixed its backward pass needs no weight
    gradient: on a batch it is about a third less work than the grouped convolution, with
    other round-off.
    """
    out = _shared_weight_conv(x, weight, styles, up, resample_filter)
    if demodulate:
        out = out * demodulation(weight, styles)[:, :, None, None].to(out.dtype)
    return out


def demodulation(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """d [B, O] = (sum_ik (W_oik s_i)^2 + eps)^-1/2, as sum_i s_i^2 (sum_k W_oik^2): one
    matrix product instead of the per-sample weights."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).T + DEMOD_EPS).rsqrt()


def _shared_weight_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    up: bool,
    resample_filter: torch.Tensor | None,
) -> torch.Tensor:
    """conv(x * s, W) (2x up: transposed conv, then the FIR), before demodulation."""
    kh = weight.shape[-1]
    x = x * styles[:, :, None, None].to(x.dtype)
    if not up:
        return F.conv2d(x, weight, padding=kh // 2)
    out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    assert resample_filter is not None
    fw = resample_filter.shape[-1]
    p0 = kh // 2 + (fw + 1) // 2 - (kh - 1)
    p1 = kh // 2 + (fw - 2) // 2 - (kh - 2)
    return _depthwise_fir(out, resample_filter, 4.0, (p0, p1, p0, p1))


def _inplace() -> bool:
    """Without autograd, update fresh intermediates in place: the same values in fewer memory
    passes (about 5% of synthesis time on a CPU at 256 px)."""
    return not torch.is_grad_enabled()


def bias_act(x: torch.Tensor, bias: torch.Tensor, lrelu: bool, clamp: float | None) -> torch.Tensor:
    """x + bias (per channel), then leaky ReLU x sqrt(2) if ``lrelu``, then clamp to +-clamp."""
    x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    inplace = _inplace()
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE, inplace=inplace)
        x = x.mul_(LRELU_GAIN) if inplace else x * LRELU_GAIN
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else clamp_recorded(x, clamp)
    return x


def clamp_recorded(x: torch.Tensor, limit: float) -> torch.Tensor:
    """x clamped to +-limit under autograd: the clamp is recorded only when it clips.

    Inside the limits a clamp is the identity, in value and in gradient, but autograd's clamp
    still keeps a mask and spends four passes over x in the backward pass. One pass for the
    extremes decides; the result and its gradient are the same bits either way. On CUDA and
    under torch.compile the plain clamp stays (reading the extremes would stall the stream
    or break the graph, and pointwise passes are cheap there).
    """
    if x.is_cuda or torch.compiler.is_compiling():
        return x.clamp(-limit, limit)
    lo, hi = torch.aminmax(x)
    if -limit < lo.item() and hi.item() < limit:
        return x
    return x.clamp(-limit, limit)


# ---------------------------------------------------------------------------------------------
# Layers, named as NVIDIA names them.


class FullyConnectedLayer(nn.Module):
    """y = x (W lr/sqrt(in))^T + b lr, then leaky ReLU x sqrt(2) or nothing."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        lrelu: bool,
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.lrelu = lrelu
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if not self.lrelu:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, lrelu=True, clamp=None)


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w [B, num_ws, w_dim] (normalised z, MLP, broadcast, truncation)."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.num_ws = config.num_ws
        hidden = config.layer_features or config.w_dim
        features = [config.z_dim] + [hidden] * (config.mapping_layers - 1) + [config.w_dim]
        for i, (fin, fout) in enumerate(zip(features[:-1], features[1:], strict=True)):
            layer = FullyConnectedLayer(
                fin, fout, lrelu=True, lr_multiplier=config.mapping_lr_multiplier
            )
            setattr(self, f"fc{i}", layer)
        self.num_layers = config.mapping_layers
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        x = z.to(torch.float32)
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat(
                    [
                        self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi),
                        x[:, truncation_cutoff:],
                    ],
                    1,
                )
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up), noise, bias, leaky ReLU x sqrt(2), clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: bool,
        config: StyleGAN2Config,
    ) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.conv_clamp, self.use_noise = config.conv_clamp, config.use_noise
        self.affine = FullyConnectedLayer(w_dim, in_channels, lrelu=False, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("resample_filter", fir_filter(config.resample_filter))
        if config.use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.fused_modconv = True  # see StyleGAN2.use_fused_modconv

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str) -> torch.Tensor:
        styles = self.affine(w)
        if not self.fused_modconv:
            return self._forward_unfused(x, styles, noise_mode)
        x = modulated_conv2d(
            x,
            self.weight.to(x.dtype),
            styles,
            demodulate=True,
            up=self.up,
            resample_filter=self.resample_filter,
            fused=self.fused_modconv,
        )
        noise = self.noise(x, noise_mode)
        if noise is not None:
            x = x + noise
        return bias_act(x, self.bias, lrelu=True, clamp=self.conv_clamp)

    def noise(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        """The per-pixel noise x strength added to the convolution's output x, or None."""
        if self.use_noise and noise_mode == "const":
            return (self.noise_const * self.noise_strength).to(x.dtype)
        if self.use_noise and noise_mode == "random":
            noise = torch.randn(
                x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype
            )
            return noise * self.noise_strength.to(x.dtype)
        return None

    def _forward_unfused(
        self, x: torch.Tensor, styles: torch.Tensor, noise_mode: str
    ) -> torch.Tensor:
        """The same layer with ``fused_modconv`` off, its pointwise tail in one pass:
        lrelu(d y + noise + b) sqrt(2) = lrelu(y (d sqrt(2)) + (noise + b) sqrt(2)) for the
        convolution's y, as one multiply-add (the gain commutes with the leaky ReLU)."""
        weight = self.weight.to(x.dtype)
        y = _shared_weight_conv(x, weight, styles, self.up, self.resample_filter)
        shift = self.bias.to(y.dtype)[:, None, None]  # [C, 1, 1]
        noise = self.noise(y, noise_mode)
        if noise is not None:
            shift = shift + noise
        scale = (demodulation(weight, styles) * LRELU_GAIN)[:, :, None, None].to(y.dtype)
        y = torch.addcmul(shift * LRELU_GAIN, y, scale)
        inplace = _inplace()
        y = F.leaky_relu(y, LRELU_SLOPE, inplace=inplace)
        if self.conv_clamp is not None:
            c = self.conv_clamp
            y = y.clamp_(-c, c) if inplace else clamp_recorded(y, c)
        return y


class ToRGBLayer(nn.Module):
    """1x1 modulated conv without demodulation (styles x 1/sqrt(C)), bias, clamp."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, config: StyleGAN2Config
    ) -> None:
        super().__init__()
        self.conv_clamp = config.conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, lrelu=False, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.fused_modconv = True  # see StyleGAN2.use_fused_modconv

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(
            x, self.weight.to(x.dtype), styles, demodulate=False, fused=self.fused_modconv
        )
        return bias_act(x, self.bias, lrelu=False, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: const or 2x-up conv0, conv1, ToRGB added to the up-sampled image."""

    def __init__(
        self, in_channels: int, out_channels: int, resolution: int, config: StyleGAN2Config
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        self.register_buffer("resample_filter", fir_filter(config.resample_filter))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, config.w_dim, resolution, up=True, config=config
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, config.w_dim, resolution, up=False, config=config
        )
        self.torgb = ToRGBLayer(out_channels, config.img_channels, config.w_dim, config)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1).to(ws.dtype)
            x = self.conv1(x, next(w_iter), noise_mode)
        else:
            x = self.conv0(x, next(w_iter), noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode)
        y = self.torgb(x, next(w_iter)).to(torch.float32)
        if img is None:
            img = y
        else:
            img = upsample2d(img, self.resample_filter)
            img = img.add_(y) if _inplace() else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> images [B, C, R, R] (nominal range [-1, 1])."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.block_resolutions = config.block_resolutions
        for res in self.block_resolutions:
            cin = config.channels(res // 2) if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(cin, config.channels(res), res, config))
        self.num_ws = config.num_ws

    def forward(
        self, ws: torch.Tensor, noise_mode: str = "const", checkpointing: bool = False
    ) -> torch.Tensor:
        """``checkpointing``: each block's activations are recomputed in the backward pass, so
        only the blocks' inputs (x and the skip image) are kept between forward and backward."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + 1)
            if checkpointing:
                x, img = checkpoint(block, x, img, block_ws, noise_mode, use_reentrant=False)
            else:
                x, img = block(x, img, block_ws, noise_mode)
            w_idx += block.num_conv
        return img


class StyleGAN2(nn.Module):
    """NVIDIA's ``Generator`` layout: ``synthesis`` then ``mapping`` (their state-dict order)."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        self.synthesis = SynthesisNetwork(config)
        self.mapping = MappingNetwork(config)

    def forward(
        self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "const"
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi), noise_mode)

    def use_fused_modconv(self, fused: bool) -> StyleGAN2:
        """Modulate the weights per sample (grouped convolution, NVIDIA's inference path and
        the default) or the activations (NVIDIA's training path, faster to differentiate)."""
        for module in self.synthesis.modules():
            if hasattr(module, "fused_modconv"):
                module.fused_modconv = fused
        return self


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------------------------
# The generator kind ``stylegan2``.

#: Eye centres of FFHQ-aligned 1024 px images (image-left, image-right), NVIDIA's alignment.
FFHQ_EYES_1024 = ((380.0, 480.0), (650.0, 480.0))
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def ffhq_fr_box(resolution: int) -> FixedBox:
    """The paper's fixed crop of an FFHQ-aligned frame (face_synthetics' FIXED_2_POINTS).

    The eyes of the FFHQ frame map onto the ArcFace template's eyes by the x inter-eye scale
    s, with no rotation: the box is [eye_r - t_r / s, + 112 / s), truncated to whole pixels.
    [21, 236) x [20, 235) at 256, [86, 944) x [83, 942) at 1024.
    """
    k = resolution / 1024
    (rx, ry), (lx, _) = ((x * k, y * k) for x, y in FFHQ_EYES_1024)
    t = ARCFACE_TEMPLATE_112.double()
    s = float(t[1, 0] - t[0, 0]) / (lx - rx)
    x0, y0 = rx - float(t[0, 0]) / s, ry - float(t[0, 1]) / s
    return FixedBox(int(x0), int(y0), int(x0 + 112 / s), int(y0 + 112 / s))


def spec_options(config: dict) -> dict:
    """The stylegan2 kind's settings: the precision of synthesis on CUDA, and how its
    modulated convolutions run."""
    if config["generator"]["checkpoint"] is None:
        raise UserError(
            "config generator.checkpoint: the stylegan2 generator needs a checkpoint (an NVIDIA "
            ".pkl, a rosinality .pt or a brownface generator.pt)"
        )
    options = {"precision": config["generator"]["precision"]}
    if not config["generator"]["fused_modconv"]:  # only when set: the default's spec is as before
        options["fused_modconv"] = False
    return options


def build(spec: GeneratorSpec) -> StyleGAN2Generator:
    from brownface.models.stylegan2_checkpoints import read_stylegan2  # imports this module

    if spec.checkpoint is None:
        raise UserError("generator.checkpoint: the stylegan2 generator needs a checkpoint")
    unknown = sorted(set(spec.options) - {"precision", "fused_modconv"})
    if unknown:
        raise UserError(f"stylegan2 generator spec: unknown option {unknown[0]!r}")
    weights = read_stylegan2(spec.checkpoint)
    return StyleGAN2Generator(weights.build(spec.checkpoint), spec)


class StyleGAN2Generator(GeneratorBase):
    """A :class:`StyleGAN2` behind the interface every stage uses.

    ``synthesis`` takes single w vectors [B, w_dim] (broadcast to every layer, as the paper's
    samplers use them) or one per layer [B, num_ws, w_dim]; the noise is the spec's
    ``noise_mode`` (const when unread). With ``precision`` bf16 or fp16 on CUDA, synthesis runs
    under autocast; float32 stays the reference and is what CPUs use.
    """

    def __init__(self, net: StyleGAN2, spec: GeneratorSpec) -> None:
        super().__init__()
        self.net, self.spec = net, spec
        cfg = net.config
        self.z_dim, self.w_dim = cfg.z_dim, cfg.w_dim
        self.img_resolution, self.num_ws = cfg.img_resolution, cfg.num_ws
        precision = spec.options.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise UserError(
                f"generator.precision: expected one of {list(PRECISIONS)}, got {precision!r}"
            )
        self.autocast_dtype = PRECISIONS[precision]
        net.use_fused_modconv(bool(spec.options.get("fused_modconv", True)))

    @property
    def w_avg(self) -> torch.Tensor:  # type: ignore[override]
        return self.net.mapping.w_avg

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return self.net.mapping(z, truncation_psi)[:, 0]

    def mapping_ws(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """[B, num_ws, w_dim], with NVIDIA's optional truncation cutoff."""
        return self.net.mapping(z, truncation_psi, truncation_cutoff)

    def synthesis(self, w: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        if w.ndim == 2:
            if w.shape[1] != self.w_dim:
                raise ValueError(f"w must have shape [B, {self.w_dim}], got {list(w.shape)}")
            w = w[:, None].expand(-1, self.num_ws, -1)
        elif w.ndim != 3 or w.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"w must have shape [B, {self.w_dim}] or [B, {self.num_ws}, {self.w_dim}], "
                f"got {list(w.shape)}"
            )
        noise = self.spec.noise_mode or "const"
        dtype = self.autocast_dtype
        if dtype is not None and w.is_cuda:
            with torch.autocast("cuda", dtype=dtype):
                return self.net.synthesis(w, noise, checkpointing).float()
        return self.net.synthesis(w, noise, checkpointing)

    def synthesis_checkpointed(self, w: torch.Tensor) -> torch.Tensor:
        """Synthesis with each block's activations recomputed in the backward pass."""
        return self.synthesis(w, checkpointing=True)

    def default_crop(self) -> FixedBox:
        return ffhq_fr_box(self.img_resolution)

    def frame_landmarks(self) -> torch.Tensor:
        raise NotImplementedError("a StyleGAN2 frame is cropped by a fixed box (default_crop)")
