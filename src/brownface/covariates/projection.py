"""GAN inversion: one W latent per aligned photograph, by the StyleGAN2-ADA projector's recipe.

For each image the latent starts at w_avg and is optimised with Adam (betas 0.9, 0.999) for
``steps`` steps (research notes, reference-implementation §5). At step t (fraction T = t/steps):

    lr    = lr0 * (0.5 - 0.5 cos(pi min(1, (1 - T) / 0.25))) * min(1, T / 0.05)
    sigma = w_std * 0.05 * max(0, 1 - T / 0.75)^2
    loss  = pixel_weight * MSE(G(w + sigma xi), x) [+ perceptual_weight * d_VGG(G(w + sigma xi), x)]

with w_avg and w_std = sqrt(sum_i ||w_i - w_avg||^2 / N) over N = 10,000 mapped samples (a
scalar; the reference mapped them with psi 0.5, apparently by accident: ``w_stats_psi``). The
reference's loss is the LPIPS-style VGG16 distance alone; it needs NVIDIA's ``vgg16.pkl``, which
we do not load (pickles run code). Instead ``params.vgg16`` names a plain weights file for our
own VGG16 (see :func:`load_perceptual`) and pixel MSE on [-1, 1] images is the default
loss, the only one the demo world uses. The world has no synthesis noise; the projection stage
loads every generator with constant noise (the reference optimises no noise buffers for the
256-pixel StyleGAN2 it uses).

Images are optimised in batches of ``batch_size`` whose latents are independent: the loss is a
sum over images and Adam is element-wise, so each latent follows its own gradient. Batches are
fixed slices of the image list, the noise xi of image k at step t comes from
``torch_generator(seed, "projection/noise", k, t)``, and shards start on batch boundaries, so a
result depends neither on the shard count nor on an interruption (checkpoints hold the finished
rows, the current batch's latents and Adam moments, and the step).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from brownface.config import SchemaParams, defaults
from brownface.covariates.align import align_tree, landmark_problem
from brownface.covariates.landmarks import read_landmarks
from brownface.covariates.multipie import MultiPieImage
from brownface.covariates.perceptual import PerceptualDistance, load_perceptual
from brownface.covariates.reader import (
    SubsetRules,
    read_multipie,
    select_subsets,
    subsets_summary,
    training_rows,
)
from brownface.errors import UserError
from brownface.imageio import from_uint8
from brownface.models.generator import GeneratorBase
from brownface.runlog import progress
from brownface.seeding import torch_generator
from brownface.sharding import shard_range
from brownface.store import (
    ProjectionStore,
    load_matching_checkpoint,
    run_key,
    save_checkpoint,
    shard_provenance,
)

log = logging.getLogger(__name__)

LOOP = "projection"
_D = defaults("projection")


@dataclass(frozen=True)
class ProjectionParams(SchemaParams):
    """Projector settings (config ``covariates.projection``); defaults and limits are the
    schema's ``projection`` (the reference's values)."""

    SCHEMA: ClassVar[str] = "projection"
    CONFIG_KEY: ClassVar[str] = "covariates.projection"

    steps: int = _D["steps"]  # Adam steps per image
    batch_size: int = _D["batch_size"]  # images optimised together (independent latents)
    learning_rate: float = _D["learning_rate"]  # peak learning rate
    lr_rampup: float = _D["lr_rampup"]  # fraction of the steps of linear warm-up
    lr_rampdown: float = _D["lr_rampdown"]  # fraction of the steps of cosine ramp-down
    noise_factor: float = _D["noise_factor"]  # initial latent noise, in units of w_std
    noise_ramp: float = _D["noise_ramp"]  # fraction of the steps over which the noise fades
    w_avg_samples: int = _D["w_avg_samples"]  # mapped samples for w_avg and w_std
    w_stats_psi: float = _D["w_stats_psi"]  # truncation of those samples (reference: 0.5)
    pixel_weight: float = _D["pixel_weight"]  # weight of the pixel MSE (images in [-1, 1])
    vgg16: str | None = _D["vgg16"]  # VGG16 weights for the perceptual term; None = no term
    perceptual_weight: float = _D["perceptual_weight"]  # weight of the perceptual term
    max_loss: float = _D["max_loss"]  # images whose final loss exceeds this are not fitted
    checkpoint_every: int = _D["checkpoint_every"]  # steps between checkpoints (0 = on abort)

    def check(self) -> None:
        if self.pixel_weight == 0 and (self.vgg16 is None or self.perceptual_weight == 0):
            raise UserError(
                "config covariates.projection.pixel_weight: must be > 0 when there is no "
                "perceptual term (vgg16 and perceptual_weight)"
            )


def learning_rate(step: int, params: ProjectionParams) -> float:
    """Cosine ramp-down over the last ``lr_rampdown``, linear ramp-up over the first ``lr_rampup``."""
    t = step / params.steps
    ramp = min(1.0, (1.0 - t) / params.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / params.lr_rampup)
    return params.learning_rate * ramp


def noise_scale(step: int, params: ProjectionParams, w_std: float) -> float:
    """Std of the latent noise at ``step``: w_std * noise_factor * max(0, 1 - t / noise_ramp)^2."""
    t = step / params.steps
    return w_std * params.noise_factor * max(0.0, 1.0 - t / params.noise_ramp) ** 2


@torch.no_grad()
def latent_stats(
    generator: nn.Module, params: ProjectionParams, seed: int
) -> tuple[torch.Tensor, float]:
    """(w_avg [w_dim], scalar w_std) over ``w_avg_samples`` mapped latents."""
    device = generator.w_avg.device
    gen = torch_generator(seed, "projection/w_stats")
    z = torch.randn(params.w_avg_samples, generator.z_dim, generator=gen).to(device)
    w = generator.mapping(z, truncation_psi=params.w_stats_psi).double()
    w_avg = w.mean(0)
    w_std = float(((w - w_avg).square().sum() / params.w_avg_samples).sqrt())
    return w_avg.float(), w_std


def latent_noise(seed: int, keys: Sequence[int], step: int, w_dim: int) -> torch.Tensor:
    """Standard-normal xi [len(keys), w_dim]: row k from (seed, "projection/noise", key, step)."""
    rows = [
        torch.randn(w_dim, generator=torch_generator(seed, "projection/noise", int(k), step))
        for k in keys
    ]
    return torch.stack(rows) if rows else torch.empty(0, w_dim)


# ---------------------------------------------------------------------------------------------
# The projector.


def _image_loss(
    synth: torch.Tensor,
    target: torch.Tensor,
    params: ProjectionParams,
    perceptual: PerceptualDistance | None,
    target_features: list[torch.Tensor] | None,
) -> torch.Tensor:
    """Per-image loss [B]."""
    loss = params.pixel_weight * (synth - target).square().mean((1, 2, 3))
    if perceptual is not None and target_features is not None:
        d = perceptual.distance(perceptual.features(synth), target_features)
        loss = loss + params.perceptual_weight * d
    return loss


def _resume(path: Path | None, key: str) -> tuple[int, dict[str, np.ndarray]] | None:
    """(batch, arrays incl. step) from a matching checkpoint, else None."""
    ckpt = load_matching_checkpoint(path, LOOP, key)
    if ckpt is None:
        return None
    return int(ckpt.meta["batch"]), {**ckpt.arrays, "step": np.int64(ckpt.meta["step"])}


def _start_batch(
    w_avg: torch.Tensor, n: int, state: dict[str, np.ndarray] | None
) -> tuple[torch.Tensor, torch.optim.Adam, int]:
    """Latents [n, w_dim] at w_avg and a fresh Adam, or both restored from a checkpoint."""
    w = w_avg.repeat(n, 1).requires_grad_(True)
    opt = torch.optim.Adam([w], betas=(0.9, 0.999), foreach=False)
    start = 0 if state is None else int(state["step"])
    if start:
        with torch.no_grad():
            w.copy_(torch.from_numpy(state["w"]))
        opt.state[w] = {
            "step": torch.tensor(float(start)),
            "exp_avg": torch.from_numpy(state["exp_avg"]).to(w),
            "exp_avg_sq": torch.from_numpy(state["exp_avg_sq"]).to(w),
        }
    return w, opt, start


def _adam_arrays(w: torch.Tensor, opt: torch.optim.Adam) -> dict[str, np.ndarray]:
    adam = opt.state[w]
    return {
        "w": w.detach().cpu().numpy(),
        "exp_avg": adam["exp_avg"].cpu().numpy(),
        "exp_avg_sq": adam["exp_avg_sq"].cpu().numpy(),
    }


def project_images(
    generator: GeneratorBase,  # mapping, synthesis, w_avg, z_dim, w_dim, img_resolution, spec
    images: torch.Tensor,  # [M, 3, R, R] in [-1, 1], aligned, R = generator.img_resolution
    params: ProjectionParams,
    checkpoint: str | Path | None = None,  # resume file; None = no checkpoints
    abort_fn: Callable[[], bool] | None = None,  # checked after every step; True = stop
    *,
    seed: int = 0,  # config seed: w statistics and latent noise
    keys: Sequence[int] | None = None,  # per-image noise keys; None = 0..M-1
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Project every image: (w [M, w_dim], final loss [M]), or None when aborted.

    The final loss is that of the final latent without noise. On abort the state is saved to
    ``checkpoint``; a later call with the same inputs resumes bit-identically.
    """
    res = generator.img_resolution
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, res, res):
        raise ValueError(f"images must have shape [M, 3, {res}, {res}], got {list(images.shape)}")
    m, w_dim, bs = images.shape[0], generator.w_dim, params.batch_size
    keys = list(range(m)) if keys is None else [int(k) for k in keys]
    device = generator.w_avg.device
    checkpoint = None if checkpoint is None else Path(checkpoint)
    w_avg, w_std = latent_stats(generator, params, seed)
    perceptual = load_perceptual(params.vgg16).to(device) if params.vgg16 else None
    key = run_key(
        params,
        [int(seed), keys, generator.spec.provenance()],
        [images.detach().cpu().float().numpy()],
    )

    w_out = np.zeros((m, w_dim), np.float32)
    loss_out = np.zeros(m, np.float32)
    first, state = 0, None
    resumed = _resume(checkpoint, key)
    if resumed is not None:
        first, state = resumed
        w_out, loss_out = state["w_out"], state["loss_out"]
        log.info(
            "projection: resuming from %s at batch %d step %d", checkpoint, first, state["step"]
        )

    def save(batch: int, step: int, w=None, opt=None) -> None:
        arrays = {"w_out": w_out, "loss_out": loss_out}
        if step:
            arrays.update(_adam_arrays(w, opt))
        save_checkpoint(
            checkpoint,
            arrays=arrays,
            iteration=batch * params.steps + step,
            rng={},  # nothing to restore: every draw is seeded by (image, step)
            meta={"loop": LOOP, "key": key, "batch": batch, "step": step},
        )

    n_batches = -(-m // bs)
    with progress((n_batches - first) * params.steps, "projection", unit="step") as bar:
        for b in range(first, n_batches):
            rows = slice(b * bs, min(m, (b + 1) * bs))
            target = images[rows].to(device)
            with torch.no_grad():
                target_features = perceptual.features(target) if perceptual else None
            w, opt, start = _start_batch(w_avg, target.shape[0], state if b == first else None)
            for step in range(start, params.steps):
                # One Adam step on every latent of the batch, with the scheduled lr and noise.
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step, params)
                sigma = noise_scale(step, params, w_std)
                ws = w
                if sigma > 0:
                    ws = w + sigma * latent_noise(seed, keys[rows], step, w_dim).to(device)
                synth = generator.synthesis(ws)
                loss = _image_loss(synth, target, params, perceptual, target_features).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update(1)
                # Checkpoint, and stop if asked (the last step of a batch is handled below).
                done = step + 1
                if done == params.steps:
                    break
                every = params.checkpoint_every
                if checkpoint is not None and every and done % every == 0:
                    save(b, done, w, opt)
                if abort_fn is not None and abort_fn():
                    if checkpoint is not None:
                        save(b, done, w, opt)
                    log.info("projection: aborted at batch %d step %d", b, done)
                    return None
            # The batch is done: its final latents and their loss without noise.
            with torch.no_grad():
                final = _image_loss(
                    generator.synthesis(w), target, params, perceptual, target_features
                )
            w_out[rows] = w.detach().cpu().numpy()
            loss_out[rows] = final.cpu().numpy()
            if checkpoint is not None:
                save(b + 1, 0)
            if abort_fn is not None and b + 1 < n_batches and abort_fn():
                log.info("projection: aborted after batch %d", b)
                return None
    return torch.from_numpy(w_out), torch.from_numpy(loss_out)


# ---------------------------------------------------------------------------------------------
# A shard of the Multi-PIE training images (merged with brownface.store.merge_shards).


@dataclass(frozen=True)
class ProjectionPlan:
    """The images to project (the same list in every shard) and those left out."""

    images: tuple[MultiPieImage, ...]  # sorted by path
    relpaths: tuple[str, ...]
    failures: tuple[tuple[str, str], ...]  # (relpath, reason): bad names, unusable landmarks

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.relpaths).encode()).hexdigest()


def plan_projection(
    root: str | Path, landmarks_csv: str | Path, rules: SubsetRules
) -> ProjectionPlan:
    """The training images of every subset whose landmarks can be aligned."""
    tree = read_multipie(root)
    log.info("%s", tree.summary())
    for rel, why in tree.bad:
        log.warning("%s: not a Multi-PIE image name (%s); ignored", rel, why)
    subsets = select_subsets(tree.images, rules)
    log.info("subsets (label 0 / label 1): %s", subsets_summary(subsets))
    landmarks = read_landmarks(landmarks_csv)
    images, failures = [], list(tree.bad)
    for row in training_rows(subsets):
        im = tree.images[int(row)]
        problem = landmark_problem(landmarks.get(im.relpath(tree.ext)))
        if problem is None:
            images.append(im)
        else:
            failures.append((im.relpath(tree.ext), problem))
    if failures:
        log.warning("%d images left out, e.g. %s (%s)", len(failures), *failures[0])
    return ProjectionPlan(
        tuple(images), tuple(im.relpath(tree.ext) for im in images), tuple(failures)
    )


def project_shard(
    generator: GeneratorBase,
    root: str | Path,  # Multi-PIE root
    landmarks_csv: str | Path,  # 5-point landmarks of the tree (landmarks.py format)
    out: str | Path,  # this shard's projections store
    *,
    shard: int = 0,
    shards: int = 1,
    rules: SubsetRules | None = None,
    params: ProjectionParams | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    abort_fn: Callable[[], bool] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path | None:
    """Align and project shard ``shard`` of ``shards`` of the training images; None if aborted."""
    rules, params = rules or SubsetRules(), params or ProjectionParams()
    plan = plan_projection(root, landmarks_csv, rules)
    m = len(plan.images)
    start, stop = shard_range(m, shards, shard, align=params.batch_size)
    log.info("projection shard %d/%d: images %d..%d of %d", shard, shards, start, stop - 1, m)
    aligned, failures = align_tree(
        root, landmarks_csv, generator.img_resolution, relpaths=plan.relpaths[start:stop]
    )
    if failures:  # the plan left out every image whose landmarks cannot be aligned
        raise RuntimeError(f"projection: unexpected alignment failures {failures[:3]}")
    res = generator.img_resolution
    pixels = np.stack([a for _, a in aligned]) if aligned else np.zeros((0, res, res, 3), np.uint8)
    result = project_images(
        generator,
        from_uint8(pixels),
        params,
        checkpoint,
        abort_fn,
        seed=seed,
        keys=range(start, stop),
    )
    if result is None:
        return None
    w, loss = result
    flagged = int((loss > params.max_loss).sum())
    if flagged:
        log.warning("%d of %d projections have loss > %g", flagged, len(loss), params.max_loss)
    ims = plan.images[start:stop]
    ProjectionStore(
        w=w.numpy(),
        loss=loss.numpy(),
        path=np.array(plan.relpaths[start:stop], dtype=object),
        subject=np.array([im.subject for im in ims], np.int64),
        session=np.array([im.session for im in ims], np.int64),
        recording=np.array([im.recording for im in ims], np.int64),
        flash=np.array([im.flash for im in ims], np.int64),
        camera=np.array([im.camera for im in ims], dtype=object),
        expression=np.array([im.expression for im in ims], dtype=object),
        provenance={
            **(provenance or {}),
            "stage": "projections",
            "multipie": str(root),
            "landmarks": str(landmarks_csv),
            "generator": generator.spec.provenance(),
            "projection_params": params.to_dict(),
            "subsets": rules.to_dict(),
            "seed": int(seed),
            "images": m,
            "image_list_sha256": plan.digest(),
            "left_out": [list(f) for f in plan.failures],
            "shard": shard_provenance(shard, shards, start, stop),
        },
        attrs={"max_loss": params.max_loss},
    ).write(out)
    return Path(out)
