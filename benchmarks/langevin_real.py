"""Langevin on the paper's networks: one iteration through StyleGAN2-256 and iResNet-50.

Random weights (the ``paper256`` StyleGAN2 config and an iResNet-50 at 112 px, 512-d), on
this machine, in one run:

* identities/s of one Langevin iteration (the embeddings every identity sees, the statistics,
  the forces, the step) with the force pass batched (``--batch``) and one identity at a time
  (batch 1, the reference implementation's loop), interleaved, best of ``--repeats``;
* the FLOP of one identity's force pass (torch's FlopCounterMode: synthesis and FR forward
  and backward), and the achieved FLOP/s of the batched iteration as a fraction of this
  machine's dense float32 matmul rate (``torch.mm`` at 4096^2, measured before and after);
* peak memory per identity of the force pass, with and without activation checkpointing:
  the growth of peak RSS from batch 1 to ``--batch`` in fresh subprocesses (CUDA's
  max_memory_allocated too when a GPU is present), and brownface's own estimate (bytes
  autograd saves, ``saved_bytes_per_identity``).

    .venv/bin/python benchmarks/langevin_real.py [--n 8] [--batch 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from brownface.models.fr import FRModel, FRSpec, build_backbone
from brownface.models.generator import GeneratorSpec
from brownface.models.stylegan2 import StyleGAN2, StyleGAN2Config, StyleGAN2Generator
from brownface.runlog import tune_allocator
from brownface.sampling.embedder import LatentEmbedder
from brownface.sampling.force_pass import ForcePass, saved_bytes_per_identity
from brownface.sampling.langevin import IdentityParams, langevin_step, random_latents

PAPER256 = StyleGAN2Config(img_resolution=256, channel_base=16384, num_fp16_res=4, conv_clamp=256)
IRESNET50 = FRSpec(kind="iresnet", arch="iresnet50")
GIB = 1024**3


def paper_embedder(device: str = "cpu", fused_modconv: bool = True) -> LatentEmbedder:
    """The paper's networks; with ``fused_modconv`` off also NHWC (recipe channels_last), the
    settings config/paper.yaml uses."""
    torch.manual_seed(0)
    net = StyleGAN2(PAPER256).eval()
    options = {} if fused_modconv else {"fused_modconv": False}
    spec = GeneratorSpec(kind="stylegan2", checkpoint="random", truncation_psi=0.7, options=options)
    fr = FRModel(build_backbone(IRESNET50), IRESNET50).eval()
    embedder = LatentEmbedder(StyleGAN2Generator(net, spec), fr).to(device).eval()
    return embedder if fused_modconv else embedder.use_channels_last()


def matmul_rate(size: int = 4096, repeats: int = 3) -> float:
    """Dense float32 FLOP/s of torch.mm on this machine, best of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def pass_flop(embedder: LatentEmbedder, batch: int) -> tuple[float, float]:
    """FLOP per identity of e(w)'s forward, and of the force pass (forward + backward to w).

    Counted with ``backward()``: FlopCounterMode's module hooks do not support
    ``autograd.grad``, which the samplers call; the operations are the same.
    """
    w = embedder.w_avg[None].repeat(batch, 1).clone()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        embedder(w)
    forward = counter.get_total_flops() / batch
    w.requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        embedder(w).backward(torch.ones(batch, IRESNET50.embedding_size))
    return forward, counter.get_total_flops() / batch


def iteration(embedder, n: int, batch: int, w: torch.Tensor, xi: torch.Tensor) -> float:
    params = IdentityParams(algorithm="langevin", n=n, batch_size=batch, d0=1.4)
    return _seconds(lambda: langevin_step(embedder, params, w, xi))


def memory_child(batch: int, checkpointing: bool, fused_modconv: bool) -> None:
    """In a fresh process: peak RSS (and CUDA max allocated) of one force pass of ``batch``."""
    tune_allocator()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    embedder = paper_embedder(device, fused_modconv)
    fp = ForcePass(batch, checkpointing=checkpointing)
    w = embedder.w_avg[None].repeat(batch, 1).clone().requires_grad_(True)
    base = high_water()
    with torch.enable_grad():
        e = fp.embed(embedder, w)
        torch.autograd.grad(e, w, grad_outputs=torch.ones_like(e))
    out = {"rss": high_water() - base}
    if device == "cuda":
        out["cuda"] = torch.cuda.max_memory_allocated()
    out["estimate"] = saved_bytes_per_identity(embedder, fp, batch=batch)
    print(json.dumps(out))


def high_water() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def measure_memory(batch: int, checkpointing: bool, fused_modconv: bool) -> dict:
    flags = [str(batch), str(int(checkpointing)), str(int(fused_modconv))]
    run = subprocess.run(
        [sys.executable, __file__, "--memory-child", *flags],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="identities of the iteration")
    ap.add_argument("--batch", type=int, default=4, help="force-pass batch size")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        batch, ckpt, fused = args.memory_child
        memory_child(batch, bool(ckpt), bool(fused))
        return
    tune_allocator()
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}; N = {args.n}, "
          f"batch {args.batch}, best of {args.repeats}")  # fmt: skip
    rate = max(matmul_rate(), 0.0)
    print(f"matmul rate (torch.mm 4096^2, fp32) before: {rate / 1e9:.0f} GFLOP/s")
    rates = [rate]
    for fused in (True, False):
        rates.append(bench_mode(args, fused))
    print(f"matmul rate after: {rates[-1] / 1e9:.0f} GFLOP/s (the ratios use the best of "
          f"{', '.join(f'{r / 1e9:.0f}' for r in rates)})")  # fmt: skip


def bench_mode(args, fused: bool) -> float:
    """One modulation mode: FLOP, identities/s batched vs one at a time, FLOP/s vs the matmul
    rate (measured again after), memory. Returns the matmul rate measured after."""
    title = "true (NVIDIA's inference ops, NCHW)" if fused else "false, channels_last: true"
    print(f"\n== generator.fused_modconv: {title}")
    embedder = paper_embedder(fused_modconv=fused)
    forward, flop = pass_flop(embedder, 2)
    print(f"per identity (FlopCounterMode): e(w) forward {forward / 1e9:.1f} GFLOP, "
          f"force pass (forward + backward) {flop / 1e9:.1f} GFLOP")  # fmt: skip
    w = random_latents(embedder, args.n, truncation_psi=0.7, seed=0)
    xi = torch.randn(args.n, embedder.w_dim, generator=torch.Generator().manual_seed(0))
    iteration(embedder, args.n, args.batch, w[: args.batch], xi[: args.batch])  # warm up
    best = {"batched": float("inf"), "one at a time": float("inf")}
    for _ in range(args.repeats):  # interleaved: a shared machine drifts
        best["batched"] = min(best["batched"], iteration(embedder, args.n, args.batch, w, xi))
        best["one at a time"] = min(best["one at a time"], iteration(embedder, args.n, 1, w, xi))
    rate = max(matmul_rate(), 1.0)
    # Useful work: n force passes (the embeddings come from their forwards). Executed: that,
    # plus the forward every batch but the last recomputes (the angles and the step are
    # O(n^2 D) and O(n w_dim), nothing beside the networks at this n).
    batches = -(-args.n // args.batch)
    executed = args.n * flop + (batches - 1) * args.batch * forward
    seconds = best["batched"]
    print("one Langevin iteration:")
    for name, s in best.items():
        print(f"  {name:>14}: {args.n / s:6.3f} identities/s ({s:.1f} s)")
    print(f"  batched / one at a time: {best['one at a time'] / seconds:.2f}x")
    print(f"  executed {executed / 1e9:.0f} GFLOP: {executed / seconds / 1e9:.0f} GFLOP/s = "
          f"{executed / seconds / rate:.2f} of the matmul rate ({rate / 1e9:.0f} GFLOP/s, "
          f"measured just after; goal >= 0.5)")  # fmt: skip
    print(f"force pass memory per identity (batch 1 -> {args.batch}, fresh processes):")
    for ckpt in (False, True):
        one, many = measure_memory(1, ckpt, fused), measure_memory(args.batch, ckpt, fused)
        per = (many["rss"] - one["rss"]) / (args.batch - 1)
        line = (f"  checkpointing {'on ' if ckpt else 'off'}: peak RSS {per / GIB:.3f} GiB, "
                f"estimate (saved for backward) {many['estimate'] / GIB:.3f} GiB")  # fmt: skip
        if "cuda" in many:
            line += f", CUDA {(many['cuda'] - one['cuda']) / (args.batch - 1) / GIB:.3f} GiB"
        print(line)
    return rate


if __name__ == "__main__":
    main()
