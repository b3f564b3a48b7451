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
loss, the only one the demo world uses. The world has no synthesis noise; a StyleGAN adapter
must synthesise with constant noise here (the reference optimises no noise buffers for the
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
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brownface.config import check_number_fields, from_section
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
from brownface.runlog import progress
from brownface.seeding import torch_generator
from brownface.sharding import shard_range
from brownface.store import (
    ProjectionStore,
    StoreError,
    load_matching_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)

LOOP = "projection"


@dataclass(frozen=True)
class ProjectionParams:
    """Projector settings (config ``covariates.projection``); defaults are the reference's."""

    steps: int = 1000  # Adam steps per image
    batch_size: int = 16  # images optimised together (independent latents)
    learning_rate: float = 0.1  # peak learning rate
    lr_rampup: float = 0.05  # fraction of the steps of linear warm-up
    lr_rampdown: float = 0.25  # fraction of the steps of cosine ramp-down
    noise_factor: float = 0.05  # initial latent noise, in units of w_std
    noise_ramp: float = 0.75  # fraction of the steps over which the noise fades out
    w_avg_samples: int = 10_000  # mapped samples for w_avg and w_std
    w_stats_psi: float = 1.0  # truncation of those samples (the reference used 0.5)
    pixel_weight: float = 1.0  # weight of the pixel MSE (images in [-1, 1])
    vgg16: str | None = None  # VGG16 weights file for the perceptual term; None = no term
    perceptual_weight: float = 1.0  # weight of the perceptual term (with vgg16)
    max_loss: float = 0.1  # images whose final loss exceeds this are not fitted (MSE 0.1: 16 dB)
    checkpoint_every: int = 100  # steps between checkpoints (0 = only on abort)

    def __post_init__(self) -> None:
        def bad(key: str, want: str) -> UserError:
            got = getattr(self, key)
            return UserError(f"config covariates.projection.{key}: must be {want}, got {got!r}")

        check_number_fields(self, bad)
        for key in ("steps", "batch_size", "w_avg_samples"):
            if getattr(self, key) < 1:
                raise bad(key, ">= 1")
        for key in ("lr_rampup", "lr_rampdown", "noise_ramp", "w_stats_psi"):
            if not 0 < getattr(self, key) <= 1:
                raise bad(key, "in (0, 1]")
        for key in ("learning_rate", "noise_factor", "pixel_weight", "perceptual_weight"):
            if getattr(self, key) < 0:
                raise bad(key, ">= 0")
        if self.checkpoint_every < 0:
            raise bad("checkpoint_every", ">= 0")
        if self.max_loss <= 0:
            raise bad("max_loss", "> 0")
        if self.pixel_weight == 0 and (self.vgg16 is None or self.perceptual_weight == 0):
            raise bad("pixel_weight", "> 0 when there is no perceptual term")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ProjectionParams:
        """Params from a config section; unknown keys are an error, missing keys the defaults."""
        return from_section(cls, config, "covariates.projection")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _fingerprint(images: torch.Tensor, keys: list[int], params, seed, generator) -> str:
    h = hashlib.sha256()
    settings = {k: v for k, v in params.to_dict().items() if k != "checkpoint_every"}
    spec = generator.spec() if hasattr(generator, "spec") else type(generator).__name__
    h.update(json.dumps([settings, int(seed), keys, spec], sort_keys=True, default=str).encode())
    h.update(images.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


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
    generator: nn.Module,  # mapping, synthesis, w_avg, z_dim, w_dim, img_resolution
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
    key = _fingerprint(images, keys, params, seed, generator)

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
# The stage: a shard of the Multi-PIE training images, and the merge of the shards.


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
    generator: nn.Module,
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
            "generator": generator.spec() if hasattr(generator, "spec") else None,
            "projection_params": params.to_dict(),
            "subsets": rules.to_dict(),
            "seed": int(seed),
            "images": m,
            "image_list_sha256": plan.digest(),
            "left_out": [list(f) for f in plan.failures],
            "shard": {"index": shard, "count": shards, "start": start, "stop": stop},
        },
        attrs={"max_loss": params.max_loss},
    ).write(out)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return Path(out)


def merge_projection_shards(
    paths: Sequence[str | Path], out: str | Path, expected: int | None = None
) -> Path:
    """Merge projection shards into one store, identical to what one shard would give.

    Refuses shards of different runs (provenance or attributes differ apart from ``shard``),
    overlapping or missing image ranges, and a total other than ``expected`` (if given).
    """
    out = Path(out)
    if not paths:
        raise StoreError(f"{out}: cannot merge projection shards: no shard files given")
    stores = [(Path(p), ProjectionStore.read(p)) for p in paths]
    ranges = []
    for path, store in stores:
        shard = store.provenance.get("shard")
        if not isinstance(shard, dict) or not {"start", "stop"} <= set(shard):
            raise StoreError(f"{path}: not a projection shard (no shard range in its provenance)")
        if len(store) != shard["stop"] - shard["start"]:
            raise StoreError(
                f"{path}: holds {len(store)} rows, but its shard range is images "
                f"{shard['start']}..{shard['stop'] - 1}"
            )
        ranges.append((int(shard["start"]), int(shard["stop"]), path, store))
    ranges.sort(key=lambda r: (r[0], r[1]))
    first = ranges[0][3]
    common = {k: v for k, v in first.provenance.items() if k != "shard"}
    for _, _, path, store in ranges[1:]:
        mine = {k: v for k, v in store.provenance.items() if k != "shard"}
        if mine != common or store.attrs != first.attrs:
            raise StoreError(f"{path}: shard of another run than {ranges[0][2]}")
    total = int(common.get("images", -1))
    if expected is not None and total != expected:
        raise StoreError(f"{out}: shards project {total} images, expected {expected}")
    position = 0
    for start, stop, path, _ in ranges:
        if start != position:
            what = "overlaps the previous shard"
            if start > position:
                what = f"leaves images {position}..{start - 1} in no shard"
            raise StoreError(f"{out}: cannot merge: {path} starts at image {start} and {what}")
        position = stop
    if position != total:
        raise StoreError(f"{out}: cannot merge: images {position}..{total - 1} are in no shard")
    merged = {
        fld.name: np.concatenate([getattr(r[3], fld.name) for r in ranges])
        for fld in ProjectionStore.FIELDS
    }
    return ProjectionStore(**merged, provenance=common, attrs=dict(first.attrs)).write(out)
