"""Throughput of the face renderer (images/s), as ratios against baselines run in this process.

    .venv/bin/python benchmarks/renderer_throughput.py [--batch 256] [--resolution 64]
        [--repeats 15] [--threads 2] [--compile]

Forward passes run under torch.inference_mode on random, varied faces (pose, light, expression,
roll/scale/shift). Each figure is the MEDIAN of the timed repeats after a warm-up (the machine
is noisy); the best repeat is shown too. Ratios: against the 2,000 images/s target, and against
the same renderer called one image at a time. --compile also times torch.compile(renderer); its
first call compiles (up to ~30 s on 2 CPU cores; a few seconds with a warm inductor cache) and
is excluded. On a shared machine try --threads 1: with other processes busy, 2 OpenMP threads
per process oversubscribe the cores and every call can slow down several-fold.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from brownface.runlog import tune_allocator
from brownface.world.renderer import EXPRESSIONS, FaceParams, FaceRenderer

TARGET = 2000.0  # images/s at 64 x 64, forward


def random_params(n: int, seed: int = 0) -> FaceParams:
    g = torch.Generator().manual_seed(seed)

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    return FaceParams(
        identity=torch.randn(n, 16, generator=g),
        yaw=u(-60, 60),
        pitch=u(-20, 20),
        light_azimuth=u(-80, 80),
        light_strength=u(0.15, 0.95),
        ambient=u(0.25, 0.75),
        expression=u(0, 1, len(EXPRESSIONS)) ** 3,  # mostly mild
        roll=u(-15, 15),
        scale=u(0.8, 1.2),
        shift=u(-0.1, 0.1, 2),
        background=u(0.25, 0.85, 3),
        background_gradient=u(-0.15, 0.15),
        light_tint=u(-0.6, 0.6),
        hair_phase=u(-3, 3),
    )


def measure(fn, images: int, repeats: int, warmup: int = 2) -> tuple[float, float]:
    """(median, best) images/s of fn, which handles ``images`` images per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return images / statistics.median(times), images / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=256, help="forward batch size")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15, help="timed repeats (>= 15 advised)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--single", type=int, default=200, help="images, one-at-a-time baseline")
    ap.add_argument("--backward-batch", type=int, default=64)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(renderer)")
    ap.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="keep glibc's default malloc thresholds (every stage tunes them; see runlog)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tuned = False if args.no_tune_allocator else tune_allocator()
    print(f"allocator tuned: {tuned}")
    load = os.getloadavg()[0]  # other processes on a shared machine skew everything
    renderer = FaceRenderer(resolution=args.resolution)
    p = random_params(args.batch)
    singles = [p[i : i + 1] for i in range(min(args.single, args.batch))]
    pb = random_params(args.backward_batch, seed=1)
    for value in vars(pb).values():
        value.requires_grad_(True)

    @torch.inference_mode()
    def forward(r=renderer):
        r(p)

    @torch.inference_mode()
    def one_at_a_time():
        for q in singles:
            renderer(q)

    def backward():
        for value in vars(pb).values():
            value.grad = None
        renderer(pb)[0].sum().backward()

    rows = {  # name -> (median, best) images/s
        f"forward, batch {args.batch}": measure(forward, args.batch, args.repeats),
        "forward, one at a time": measure(one_at_a_time, len(singles), 3, warmup=1),
        f"forward+backward, batch {args.backward_batch}": measure(
            backward, args.backward_batch, args.repeats
        ),
    }
    if args.compile:
        compiled = torch.compile(renderer)
        t0 = time.perf_counter()
        forward(compiled)
        print(f"torch.compile: first call (compilation) took {time.perf_counter() - t0:.1f} s")
        with torch.inference_mode():  # same pixels, or the speed means nothing
            err = (compiled(p)[0] - renderer(p)[0]).abs().max().item()
        print(f"torch.compile: max |compiled - eager| = {err:.1e}")
        rows["compiled forward"] = measure(lambda: forward(compiled), args.batch, args.repeats)

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.resolution}x{args.resolution}, {args.repeats} repeats (median; best), "
        f"load average {load:.1f} on {os.cpu_count()} CPUs at start"
    )
    print(f"{'measurement':<32}{'median img/s':>14}{'best img/s':>12}")
    for name, (median, best) in rows.items():
        print(f"{name:<32}{median:>14.0f}{best:>12.0f}")
    batched, single, bwd, *comp = (median for median, _ in rows.values())
    print(f"\nbatched / target ({TARGET:.0f} img/s):     {batched / TARGET:6.2f}x")
    print(f"batched / one at a time:             {batched / single:6.2f}x")
    print(f"forward+backward / forward:          {bwd / batched:6.2f}x")
    if comp:
        print(f"compiled / eager:                    {comp[0] / batched:6.2f}x")


if __name__ == "__main__":
    main()
