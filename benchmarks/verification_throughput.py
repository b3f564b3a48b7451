"""Throughput of the verification protocol: embedding (plain, flip-fused) vs. the metric alone.

Synthetic 112x112 RGB pairs and a small random CNN on the CPU. Times are also given as ratios to
an in-process baseline, embedding every image once without flip fusion (= 1.00), so they compare
across machines. Run: ``.venv/bin/python benchmarks/verification_throughput.py --pairs 6000``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.preprocessing import normalize
from torch import nn

from brownface.evaluate.verification import flip_fused_embeddings, verification_roc
from brownface.runlog import tune_allocator


def small_cnn(dim: int = 128) -> nn.Module:
    """Four stride-2 convolutions (112 -> 7) and a linear head; random weights, eval mode."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for c_in, c_out in ((3, 16), (16, 32), (32, 64), (64, 64)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.PReLU(c_out)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 7 * 7, dim)).eval()


def plain_embeddings(images: list[np.ndarray], embed: nn.Module, batch_size: int) -> np.ndarray:
    """The baseline: same input pipeline as flip_fused_embeddings, one embedding per image."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.stack(images[start : start + batch_size])).permute(0, 3, 1, 2)
            out.append(embed((x / 255 - 0.5) / 0.5).numpy())
    return normalize(np.concatenate(out))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(repeat: int, steps: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Minimum time of each step over ``repeat`` interleaved rounds (a shared machine is noisy)."""
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(repeat):
        for name, fn in steps.items():
            best[name] = min(best[name], timed(fn)[0])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6000, help="number of pairs (6000 = LFW)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()  # as every stage does (brownface.runlog)

    # 2 x pairs images drawn from a pool of 256 distinct ones (same work, less memory).
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(256, 112, 112, 3), dtype=np.uint8)
    images = [pool[i] for i in rng.integers(0, len(pool), size=2 * args.pairs)]
    issame = rng.random(args.pairs) < 0.5
    model = small_cnn()
    plain_embeddings(images[: args.batch_size], model, args.batch_size)  # warm-up

    emb = flip_fused_embeddings(images, model, args.batch_size)
    t = best_of(
        args.repeat,
        {
            "plain": lambda: plain_embeddings(images, model, args.batch_size),
            "flip": lambda: flip_fused_embeddings(images, model, args.batch_size),
            "metric": lambda: verification_roc(emb[0::2], emb[1::2], issame),
        },
    )
    t_plain = t["plain"]
    rows = [
        ("embed, no flip (baseline)", t_plain),
        ("embed, flip-fused", t["flip"]),
        ("metric alone (10-fold acc + VAL)", t["metric"]),
        ("full protocol (flip + metric)", t["flip"] + t["metric"]),
    ]
    print(
        f"{args.pairs} pairs of 112x112 images, {args.threads} threads, batch {args.batch_size}, "
        f"best of {args.repeat}"
    )
    print(f"{'step':34s} {'seconds':>8s} {'pairs/s':>10s} {'x baseline':>10s}")
    for name, seconds in rows:
        print(f"{name:34s} {seconds:8.3f} {args.pairs / seconds:10.0f} {seconds / t_plain:10.3f}")


if __name__ == "__main__":
    main()
