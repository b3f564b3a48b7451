"""StyleGAN2 synthesis throughput at 256x256, against NVIDIA's reference ops in the same run.

Builds a random-weight ``paper256`` generator (channel_base 16384, 8 mapping layers, fp16
resolutions 4 and conv_clamp 256 in its config; computed in fp32) and times, on this CPU:

* brownface synthesis, images/s at batch 8 (const noise, ``torch.inference_mode``);
* brownface forward + backward to w (what Langevin, Dispersion and projection do);
* with ``--nvidia PATH`` (a checkout of NVlabs/stylegan2-ada-pytorch): NVIDIA's own
  ``training.networks.Generator`` with the same weights (their reference ops: ``force_fp32``,
  no custom CUDA kernels on a CPU), timed interleaved with brownface's, the ratio brownface /
  NVIDIA, and the largest absolute difference of the two outputs; then NVIDIA's pickle of it, its load time with brownface's
  restricted unpickler against the load time of the converted ``generator.pt``.

NVIDIA's code is only imported from the given path, never shipped or needed otherwise.

    .venv/bin/python benchmarks/stylegan2.py [--nvidia /path/to/stylegan2-ada-pytorch]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

import torch

from brownface.models.stylegan2 import StyleGAN2, StyleGAN2Config
from brownface.models.stylegan2_checkpoints import convert, read_stylegan2
from brownface.runlog import tune_allocator

PAPER256 = StyleGAN2Config(img_resolution=256, channel_base=16384, num_fp16_res=4, conv_clamp=256)


def _time(fn, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls after one warm-up call."""
    fn()
    return timeit.repeat(fn, number=1, repeat=repeats)


def _nvidia_generator(path: Path, net: StyleGAN2):
    sys.path.insert(0, str(path))
    import dnnlib  # noqa: PLC0415  (NVIDIA's, from --nvidia)
    from training.networks import Generator  # noqa: PLC0415

    cfg = net.config
    gen = Generator(
        z_dim=cfg.z_dim,
        c_dim=0,
        w_dim=cfg.w_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        mapping_kwargs=dnnlib.EasyDict(num_layers=cfg.mapping_layers),
        synthesis_kwargs=dnnlib.EasyDict(
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            num_fp16_res=cfg.num_fp16_res,
            conv_clamp=cfg.conv_clamp,
        ),
    )
    gen.load_state_dict(net.state_dict())  # the same names: nothing to map
    return gen.eval().requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia", type=Path, default=None, help="stylegan2-ada-pytorch checkout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    torch.manual_seed(0)
    net = StyleGAN2(PAPER256).eval().requires_grad_(False)
    z = torch.randn(args.batch, PAPER256.z_dim)
    ws = net.mapping(z, truncation_psi=0.7)
    print(f"paper256 random weights, batch {args.batch}, {args.threads} threads, fp32, const noise")

    def ours():
        with torch.inference_mode():
            return net.synthesis(ws, "const")

    t_ours = statistics.median(_time(ours, args.repeats))
    print(f"brownface synthesis:           {args.batch / t_ours:7.3f} img/s")

    def backward():
        w = ws[:, 0].clone().requires_grad_(True)
        net.synthesis(
            w[:, None].expand(-1, PAPER256.num_ws, -1), "const"
        ).square().mean().backward()

    t_back = statistics.median(_time(backward, args.repeats))
    print(f"brownface forward+backward(w): {args.batch / t_back:7.3f} img/s "
          f"({t_back / t_ours:.2f}x the forward time)")  # fmt: skip

    if args.nvidia is None:
        print("(give --nvidia PATH to a stylegan2-ada-pytorch checkout for the ratio)")
        return
    theirs = _nvidia_generator(args.nvidia, net)

    def nvidia():
        with torch.inference_mode():
            return theirs.synthesis(ws, noise_mode="const", force_fp32=True)

    # Interleaved, so that both see the same load on a shared machine.
    pairs = [(_time(ours, 1)[0], _time(nvidia, 1)[0]) for _ in range(args.repeats)]
    t_ours = statistics.median(p[0] for p in pairs)
    t_nv = statistics.median(p[1] for p in pairs)
    diff = float((ours() - nvidia()).abs().max())
    print(f"brownface synthesis (again):   {args.batch / t_ours:7.3f} img/s")
    print(f"NVIDIA reference synthesis:    {args.batch / t_nv:7.3f} img/s")
    print(f"brownface / NVIDIA:            {t_nv / t_ours:7.2f}x   (max |difference| {diff:.2e})")

    with tempfile.TemporaryDirectory() as tmp:
        pkl, pt = Path(tmp) / "network.pkl", Path(tmp) / "generator.pt"
        with pkl.open("wb") as f:  # as NVIDIA's training loop writes snapshots
            pickle.dump({"G": None, "D": None, "G_ema": theirs, "augment_pipe": None}, f)
        convert(pkl, pt)
        t_pkl = min(_time(lambda: read_stylegan2(pkl).build(pkl), args.repeats))
        t_pt = min(_time(lambda: read_stylegan2(pt).build(pt), args.repeats))
        print(f"load + build: NVIDIA pickle {t_pkl:.3f} s, generator.pt {t_pt:.3f} s "
              f"({pkl.stat().st_size / 2**20:.0f} MB / {pt.stat().st_size / 2**20:.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
