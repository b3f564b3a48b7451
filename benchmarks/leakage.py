"""The leakage search at FFHQ's size: the nearest real identity of 100k synthetic ones among
70k real ones (512-d), in blocks, against a plain float32 matmul measured in the same run.

The search does 2 N M D floating-point operations (one cosine per pair), in blocks of
``brownface.leakage.search.ROWS x COLS``; the baseline is ``torch.mm`` of that block shape
into a reused buffer, the rate the search could reach if taking the row maxima were free.
Also reported: peak RSS (the inputs are 0.35 GB; the 100k x 70k matrix would be 28 GB).
Goal: >= 0.8x the matmul rate, under 2 GiB. Random unit vectors; the time does not depend on
the values.

    .venv/bin/python benchmarks/leakage.py [--synthetic 100000] [--real 70000] [--dim 512]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from brownface.leakage.search import COLS, ROWS, nearest_real
from brownface.runlog import tune_allocator


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


def _matmul_rate(d: int, repeats: int) -> float:
    """GFLOP/s of torch.mm at the search's block shape (median of ``repeats``)."""
    a, b, out = _unit(ROWS, d, 2), _unit(COLS, d, 3).T, torch.empty(ROWS, COLS)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t)
    return 2 * ROWS * COLS * d / sorted(times)[len(times) // 2] / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=70_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=21, help="matmul timings (median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()

    synthetic, real = _unit(args.synthetic, args.dim, 0), _unit(args.real, args.dim, 1)
    inputs_gib = _peak_gib()
    before = _matmul_rate(args.dim, args.repeats)
    t = time.perf_counter()
    nearest_real(synthetic, real)
    seconds = time.perf_counter() - t
    after = _matmul_rate(args.dim, args.repeats)
    flop = 2 * args.synthetic * args.real * args.dim
    rate = flop / seconds / 1e9
    baseline = (before + after) / 2
    print(f"{args.synthetic} synthetic x {args.real} real x {args.dim}-d, {args.threads} threads,"
          f" blocks {ROWS} x {COLS}")  # fmt: skip
    print(f"search: {seconds:.1f} s, {flop / 1e12:.2f} TFLOP, {rate:.0f} GFLOP/s")
    print(f"matmul at the block shape: {before:.0f} GFLOP/s before, {after:.0f} after")
    print(f"ratio to the matmul rate: {rate / baseline:.2f}x (goal >= 0.8)")
    print(f"peak RSS: {_peak_gib():.2f} GiB (inputs made: {inputs_gib:.2f} GiB; goal < 2)")


if __name__ == "__main__":
    main()
