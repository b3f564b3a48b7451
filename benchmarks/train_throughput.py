"""Training throughput of the FR trainer's step (forward, margin head, backward, SGD), images/s.

Baseline, in the same process: the forward pass alone of the same network on the same batch.
Reports steady-state medians (the machine is shared; medians resist noise) for the world's
reference recipe (small iResNet at 32x32) and the paper's (IResNet-50 at 112x112, AdaFace).

    .venv/bin/python benchmarks/train_throughput.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from brownface.models.fr import FRModel, FRSpec, build_backbone
from brownface.runlog import tune_allocator
from brownface.train.heads import build_head
from brownface.train.recipe import TrainRecipe

RECIPES = {
    "world reference (iresnet [1,1,1,1] w16, 32px, arcface)": TrainRecipe(
        arch="iresnet", layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), input_size=32,
        embedding_size=128, head="arcface", batch_size=128,
    ),
    "paper (iresnet50, 112px, adaface; batch 32 here)": TrainRecipe(batch_size=32),
}  # fmt: skip


def median_rate(fn, batch: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def measure(recipe: TrainRecipe, classes: int, repeats: int) -> tuple[float, float]:
    spec = FRSpec.from_recipe(recipe)
    model = FRModel(build_backbone(spec), spec)
    head = build_head(recipe.head, recipe.embedding_size, classes)
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
    x = torch.rand(recipe.batch_size, 3, recipe.input_size, recipe.input_size) * 2 - 1
    y = torch.randint(classes, (recipe.batch_size,))

    def train_step() -> None:
        loss = nn.functional.cross_entropy(head(model(x), y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward() -> None:
        with torch.no_grad():
            model(x)

    model.train()
    train = median_rate(train_step, recipe.batch_size, repeats)
    forward_rate = median_rate(forward, recipe.batch_size, repeats)
    return train, forward_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()  # as every stage does (brownface.runlog)
    print(f"threads {args.threads}, {args.classes} classes, median of {args.repeats}")
    print(f"{'recipe':58s} {'train img/s':>12s} {'forward img/s':>14s} {'train/forward':>14s}")
    for name, recipe in RECIPES.items():
        train, forward = measure(recipe, args.classes, args.repeats)
        print(f"{name:58s} {train:12.0f} {forward:14.0f} {train / forward:14.3f}")


if __name__ == "__main__":
    main()
