"""Throughput of one Dispersion iteration (variations/s): batched vs. one identity at a time.

    .venv/bin/python benchmarks/dispersion_throughput.py [--identities 8] [--variations 64]
        [--batch-size 256] [--threads 2] [--repeat 3]

Both paths run ``dispersion_step`` on the same models: the world generator (64 x 64) and a
randomly initialised network of the world's reference FR architecture (iResNet [1, 1, 1, 1],
widths 16-128, 32 x 32 input, 128-d). The batched path groups ``batch_size // variations``
identities per forward/backward pass, as ``sample_variations`` does; the reference takes one
identity (all its variations) per pass and its repulsion by autograd. Best of ``--repeat``
interleaved rounds (the machine is shared), after one warm-up round.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from brownface.models.fr import FRModel, FRSpec, build_backbone
from brownface.runlog import tune_allocator
from brownface.sampling.dispersion import (
    VariationParams,
    dispersion_step,
    iteration_noise,
    start_latents,
    start_noise,
)
from brownface.sampling.embedder import LatentEmbedder
from brownface.world.generator import WorldGenerator


def build_embedder() -> LatentEmbedder:
    generator = WorldGenerator(seed=0)
    spec = FRSpec(
        kind="iresnet",
        arch="iresnet",
        layers=(1, 1, 1, 1),
        widths=(16, 32, 64, 128),
        input_size=32,
        embedding_size=128,
    )
    torch.manual_seed(0)
    fr = FRModel(build_backbone(spec), spec).eval()
    return LatentEmbedder(generator, fr)


def iteration(embedder, params, w, e_ref, xi, impl: str) -> None:
    """One Dispersion iteration over all identities, in groups of params.group_size."""
    step = params.group_size if impl == "batched" else 1
    for g in range(0, w.shape[0], step):
        dispersion_step(
            embedder, params, w[g : g + step], e_ref[g : g + step], xi[g : g + step], impl=impl
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--variations", type=int, default=64, help="A (paper: 64)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per pass")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best time counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()  # as every stage does (brownface.runlog)

    embedder = build_embedder()
    params = dataclasses.replace(
        VariationParams(algorithm="dispersion"),
        variations=args.variations,
        batch_size=args.batch_size,
        r_w=2.0,
    )
    ids = torch.arange(args.identities)
    w_ref = embedder.mapping(torch.randn(args.identities, embedder.z_dim), truncation_psi=0.7)
    with torch.no_grad():
        e_ref = embedder(w_ref)
    w = start_latents(w_ref, start_noise(0, ids, params.variations, embedder.w_dim)[0], 0.2)
    xi = iteration_noise(0, ids, 0, params.variations, embedder.w_dim)

    best = {"batched": float("inf"), "ref": float("inf")}
    for round_ in range(args.repeat + 1):
        for impl in best:
            t0 = time.perf_counter()
            iteration(embedder, params, w, e_ref, xi, impl)
            if round_ > 0:  # round 0 warms up
                best[impl] = min(best[impl], time.perf_counter() - t0)

    n = args.identities * params.variations
    print(
        f"{args.identities} identities x {params.variations} variations, batch {args.batch_size} "
        f"({params.group_size} identities per pass), {args.threads} threads, best of {args.repeat}"
    )
    print(f"{'path':28s} {'seconds':>8s} {'variations/s':>13s}")
    for impl, label in (("ref", "one identity at a time (ref)"), ("batched", "batched")):
        print(f"{label:28s} {best[impl]:8.3f} {n / best[impl]:13.1f}")
    print(f"batched / reference: {best['ref'] / best['batched']:.2f}x")


if __name__ == "__main__":
    main()
