"""How many identities can Langevin hold apart in the world, under its reference FR network?

The demo's Langevin leaves every identity with a neighbour inside ICT (``frac_below_ict`` = 1.0).
This experiment asks why: it runs the demo's Langevin recipe (seed 0) for increasing N and
iteration counts (one run per N, read at each count) and prints the fraction of identities with
a neighbour inside ICT, the mean nearest-neighbour angle under the reference FR and the same
angle between the world's ground-truth identity vectors; and the reference network's impostor
angles (pairs of random identities), i.e. the threshold it actually separates at.

    .venv/bin/python docs/experiments/identity_capacity.py results/world/reference_fr/model.pt

Writes nothing; its cost grows as N x the largest iteration count.
``docs/experiments/README.md`` records its output and times.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import yaml

from brownface import config as brownface_config
from brownface.models.fr import FRSpec
from brownface.models.generator import generator_spec
from brownface.sampling.embedder import embed_all
from brownface.sampling.geometry import angle, cosines, nearest_angles
from brownface.sampling.langevin import (
    IdentityParams,
    langevin_noise,
    langevin_step,
    random_latents,
)
from brownface.sampling.stages import build_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the world reference network (model.pt)")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--n", type=int, nargs="+", default=[16, 32, 64, 128, 200])
    parser.add_argument("--iterations", type=int, nargs="+", default=[30, 100])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of the Langevin recipe, e.g. k_latent=0 d0=1.8",
    )
    args = parser.parse_args()

    cfg = brownface_config.load(args.config)
    spec = generator_spec(cfg)
    embedder, _ = build_embedder(spec, FRSpec(kind="brownface", checkpoint=args.model), "cpu")
    world = embedder.generator
    recipe = dict(cfg["identities"]["langevin"])
    for item in args.set:
        key, _, value = item.partition("=")
        recipe[key] = yaml.safe_load(value)
    ict = recipe["ict"]
    psi = spec.truncation_psi
    print(
        f"ICT {math.degrees(ict):.1f} deg, d0 {math.degrees(recipe['d0']):.1f} deg, "
        f"k_latent {recipe['k_latent']}; world identity_dim {world.identity_dim}"
    )

    # The reference network's impostor angles: 2,000 random identities, every pair.
    w = random_latents(embedder, 2000, psi, seed=12345)
    e = embed_all(embedder, w, 256)
    theta = angle(cosines(e, e))
    pairs = theta[torch.triu(torch.ones_like(theta, dtype=torch.bool), diagonal=1)]
    q = torch.quantile(pairs.double(), torch.tensor([1e-3, 1e-2, 0.5], dtype=torch.float64))
    far3, far2, median = (math.degrees(v) for v in q.tolist())
    print(
        f"impostor angles of random identities (deg): FAR 1e-3 at {far3:.1f}, "
        f"FAR 1e-2 at {far2:.1f}, median {median:.1f}"
    )

    print("N, iterations, frac_below_ict, nn_angle_mean_fr, nn_angle_mean_truth, seconds")
    checkpoints = sorted({0, *args.iterations})
    for n in args.n:
        # One run per N, read at each requested iteration count: the same steps as langevin()
        # (its noise of iteration t does not depend on how many iterations follow).
        params = IdentityParams.from_config(
            {**recipe, "n": n, "iterations": checkpoints[-1], "algorithm": "langevin"}
        )
        t0 = time.perf_counter()
        w = random_latents(embedder, n, psi, 0)
        for it in range(checkpoints[-1] + 1):
            if it in checkpoints:
                nn_fr = nearest_angles(embed_all(embedder, w, params.batch_size), 1024)
                nn_truth = nearest_angles(world.identity_params(w), 1024)
                print(
                    f"{n}, {it}, {(nn_fr < ict).double().mean().item():.3f}, "
                    f"{math.degrees(nn_fr.mean().item()):.1f}, "
                    f"{math.degrees(nn_truth.mean().item()):.1f}, {time.perf_counter() - t0:.0f}",
                    flush=True,
                )
            if it < checkpoints[-1]:
                xi = langevin_noise(0, it, n, embedder.w_dim)
                w, _ = langevin_step(embedder, params, w, xi)


if __name__ == "__main__":
    main()
