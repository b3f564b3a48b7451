"""Langevin interaction forces: batched vs one identity at a time, and the repulsion's memory.

Throughput: identities/s of the interaction forces (-dU_i/dw_i through the world generator and a
small iResNet, 16x16 crops) for N identities, batched (one backward pass per batch) vs the
reference loop (the reference implementation's batch of 1). Memory: peak RSS of the repulsion
step alone (blockwise angles, potential and gradient w.r.t. the embeddings; no generator) for
100,000 identities with 512-d embeddings, in a fresh subprocess, against the dense N x N angle
matrix. Run: ``.venv/bin/python benchmarks/langevin_throughput.py [--n 256] [--rows 1024]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from brownface.models.fr import FRModel, FRSpec, build_backbone
from brownface.runlog import tune_allocator
from brownface.sampling.embedder import LatentEmbedder, embed_all
from brownface.sampling.geometry import nearest_angles
from brownface.sampling.langevin import (
    embedding_gradient,
    interaction_forces,
    interaction_forces_reference,
    random_latents,
)
from brownface.world.generator import WorldGenerator

GIB = 1024**3


def small_embedder() -> LatentEmbedder:
    gen = WorldGenerator(seed=0, resolution=64)
    spec = FRSpec(
        kind="iresnet", arch="iresnet", layers=(1, 1, 1, 1), widths=(8, 8, 16, 16),
        input_size=16, embedding_size=32,
    )  # fmt: skip
    torch.manual_seed(0)
    fr = FRModel(build_backbone(spec), spec).eval()
    return LatentEmbedder(gen, fr).eval()


def throughput(n: int, batch_size: int, repeats: int) -> None:
    embedder = small_embedder()
    w = random_latents(embedder, n, truncation_psi=0.7, seed=0)
    fixed = embed_all(embedder, w, batch_size)
    d0 = nearest_angles(fixed, 2048).quantile(0.9).item()
    steps = {
        "batched": lambda: interaction_forces(embedder, w, fixed, 1.0, d0, batch_size, 2048),
        "one at a time": lambda: interaction_forces_reference(embedder, w, fixed, 1.0, d0),
    }
    interaction_forces(embedder, w[:batch_size], fixed, 1.0, d0, batch_size, 2048)  # warm up
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeats):  # interleaved, best of: a shared machine is noisy
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"interaction forces, N = {n}, batch {batch_size}, best of {repeats}:")
    for name, seconds in best.items():
        print(f"  {name:>14}: {n / seconds:8.1f} identities/s ({seconds:.2f} s)")
    print(f"  batched / one at a time: {best['one at a time'] / best['batched']:.1f}x (target 5x)")


def high_water_bytes() -> int:
    """Peak RSS of this process image: VmHWM (ru_maxrss survives exec, so it can show the
    parent's peak in a subprocess); ru_maxrss where /proc is missing."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(n: int, dim: int, rows: int, batch_size: int, block_size: int) -> None:
    """In a fresh process: maxrss before and after the repulsion step of ``rows`` identities."""
    tune_allocator()
    gen = torch.Generator().manual_seed(0)
    fixed = torch.empty(n, dim)
    for s in range(0, n, 4096):  # in chunks: a transient peak here would mask the step's
        fixed[s : s + 4096] = torch.randn(min(4096, n - s), dim, generator=gen)
    base = high_water_bytes()
    t0 = time.perf_counter()
    for s in range(0, rows, batch_size):
        index = torch.arange(s, min(s + batch_size, rows))
        embedding_gradient(fixed[index], fixed, 1.0, 1.4, block_size, index)
    seconds = time.perf_counter() - t0
    peak = high_water_bytes()
    print(json.dumps({"base": base, "peak": peak, "seconds": seconds}))


def memory(n: int, dim: int, rows: int, batch_size: int, block_size: int) -> None:
    args = [sys.executable, __file__, "--memory-child", "--mem-n", str(n), "--dim", str(dim)]
    args += ["--rows", str(rows), "--batch-size", str(batch_size), "--block-size", str(block_size)]
    args += ["--threads", str(torch.get_num_threads())]
    res = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    dense = n * n * 4  # one float32 N x N angle matrix (autograd would keep several)
    print(
        f"repulsion step (angles + potential + grad wrt embeddings), N = {n:,}, D = {dim}, "
        f"batch {batch_size}, block {block_size}, {rows:,} rows timed:"
    )
    print(f"  peak RSS of the process: {res['peak'] / GIB:.3f} GiB (target <= 2 GiB)")
    print(f"  of which the step itself: {(res['peak'] - res['base']) / GIB:.3f} GiB")
    print(f"  embeddings [N, D] fp32: {n * dim * 4 / GIB:.3f} GiB")
    print(f"  dense N x N fp32 angles alone: {dense / GIB:.1f} GiB = {dense / res['peak']:.0f}x")
    rate = rows / res["seconds"]
    print(f"  {rate:,.0f} rows/s -> a full step over N rows ~ {n / rate:,.0f} s on this CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="identities for the throughput")
    parser.add_argument("--batch-size", type=int, default=64, help="identities per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timings per path (best of)")
    parser.add_argument("--mem-n", type=int, default=100_000, help="identities for the memory")
    parser.add_argument("--dim", type=int, default=512, help="embedding size for the memory")
    parser.add_argument("--rows", type=int, default=1024, help="rows timed (peak needs few)")
    parser.add_argument("--block-size", type=int, default=2048, help="columns per angle block")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.mem_n, args.dim, args.rows, args.batch_size, args.block_size)
        return
    tune_allocator()
    throughput(args.n, args.batch_size, args.repeats)
    memory(args.mem_n, args.dim, args.rows, args.batch_size, args.block_size)


if __name__ == "__main__":
    main()
