"""The FR training loop: SGD + margin head, per-epoch validation, checkpoints that resume exactly.

Resume is bit-for-bit on CPU: the checkpoint holds model, head, optimizer, scheduler, AMP scaler,
the global RNG states and the position (epoch, step); data order and augmentation are functions
of (seed, epoch, sample), so a resumed run replays exactly the batches the interrupted one would
have seen. Multi-GPU runs use DDP when launched by ``torchrun`` (``WORLD_SIZE`` > 1).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from brownface.dataset.layout import dataset_fingerprint, read_index
from brownface.distributed import init_from_env, rank_device
from brownface.errors import UserError
from brownface.evaluate.verification import flip_fused_embeddings, verification_roc
from brownface.models.fr import FRModel, FRSpec, build_backbone, save_fr_model
from brownface.seeding import derive_seed, torch_generator
from brownface.store import atomic_path
from brownface.train.augment import Augmenter
from brownface.train.data import EpochBatches, FaceDataset
from brownface.train.heads import build_head
from brownface.train.recipe import TrainRecipe

log = logging.getLogger(__name__)
LOG_COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s")
CACHE_LIMIT = 2 << 30


@dataclass
class ValidationSet:
    """A verification set held in memory: uint8 HxWx3 RGB images, 2 per pair."""

    name: str
    images: list
    issame: object


def _param_groups(backbone: nn.Module, head: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on everything but BatchNorm parameters (and the fixed ``features`` weight)."""
    decay, no_decay = [], []
    for module in backbone.modules():
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (no_decay if is_bn else decay).append(p)
    decay += [p for p in head.parameters() if p.requires_grad]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def validate(
    model: FRModel, sets: list[ValidationSet], device: torch.device, batch: int = 128
) -> dict:
    """Flip-fused 10-fold accuracy on each set (the insightface protocol)."""
    was_training = model.training
    model.eval()
    results = {}
    for vs in sets:
        emb = flip_fused_embeddings(vs.images, model, batch_size=batch, device=device)
        res = verification_roc(emb[0::2], emb[1::2], vs.issame)
        results[vs.name] = {"accuracy": res.accuracy, "std": res.std}
    model.train(was_training)
    return results


class _TrainNet(nn.Module):
    """Backbone and margin head as one module, so DDP synchronises the head's gradients too."""

    def __init__(self, model: FRModel, head: nn.Module, amp: bool) -> None:
        super().__init__()
        self.model, self.head, self.amp = model, head, amp

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=torch.float16, enabled=self.amp):
            embeddings = self.model(images)
        return self.head(embeddings.float(), labels)


class Trainer:
    """One training run writing ``model.pt``, ``train_log.csv`` and ``validation.json`` to
    ``out_dir`` and resuming from ``checkpoint`` when it was made by this recipe on these
    images (``brownface.dataset.layout.dataset_fingerprint``); the checkpoint is kept after
    the run, like every stage's (``brownface.store.checkpoint``)."""

    def __init__(
        self,
        recipe: TrainRecipe,
        data_root: Path,  # rendered dataset: images/ + index.csv
        out_dir: Path,  # final outputs
        checkpoint: Path,  # resume state (kept outside the outputs so a failed job keeps it)
        val_sets: list[ValidationSet] = (),
        device: torch.device | str = "cpu",
        name: str | None = None,  # the model's name, recorded in its spec (e.g. the dataset's)
    ) -> None:
        self.recipe, self.out_dir, self.checkpoint = recipe, Path(out_dir), Path(checkpoint)
        self.rank, self.world, local = init_from_env()
        self.device = rank_device(torch.device(device), local)
        self.val_sets = list(val_sets)
        torch.manual_seed(recipe.seed)

        index = read_index(data_root)
        self.data_fingerprint = dataset_fingerprint(index)
        cache = recipe.cache
        if cache is None:
            cache = len(index) * 3 * recipe.input_size**2 < CACHE_LIMIT
        augment = Augmenter(recipe.p_crop, recipe.p_lowres, recipe.p_photo, recipe.p_flip)
        self.dataset = FaceDataset(index, recipe.input_size, augment, recipe.seed, cache=cache)
        self.num_classes = index.num_classes

        training_data = {
            "root": str(data_root),
            "fingerprint": self.data_fingerprint,
            "images": len(index),
            "identities": index.num_classes,
        }
        self.spec = replace(
            FRSpec.from_recipe(recipe), extra={"name": name, "training_data": training_data}
        )
        self.model = FRModel(build_backbone(self.spec), self.spec).to(self.device)
        self.head = build_head(
            recipe.head, recipe.embedding_size, self.num_classes, **recipe.head_kwargs
        )
        self.head.to(self.device)
        groups = _param_groups(self.model.backbone, self.head, recipe.weight_decay)
        self.optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(recipe.milestones), gamma=recipe.gamma
        )
        self.use_amp = recipe.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.net = _TrainNet(self.model, self.head, self.use_amp)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.history: list[dict] = []
        self.window: dict = {"losses": [], "images": 0}  # steps since the last log row

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "backbone": self.model.backbone.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "history": json.dumps(self.history),
            "window": json.dumps(self.window),
            "recipe": self.recipe.to_json(),
            "data": self.data_fingerprint,
        }

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        with atomic_path(self.checkpoint) as tmp:
            torch.save(self.state(), tmp)

    def try_resume(self) -> bool:
        if not self.checkpoint.is_file():
            return False
        try:
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint means start over
            log.warning("%s: unreadable (%s); training from the start", self.checkpoint, exc)
            return False
        if (
            state.get("recipe") != self.recipe.to_json()
            or state.get("data") != self.data_fingerprint
        ):
            # A stale checkpoint (the recipe or the data changed since): never mix runs.
            log.warning(
                "%s: made by another recipe or dataset; training from the start", self.checkpoint
            )
            return False
        self.model.backbone.load_state_dict(state["backbone"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.history = json.loads(state["history"])
        self.window = json.loads(state["window"])
        log.info(
            "resumed from %s at epoch %d step %d", self.checkpoint, self.epoch, self.step_in_epoch
        )
        return True

    # -- the loop -------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps of one epoch (incomplete last batches are dropped)."""
        return len(self.dataset) // (self.recipe.batch_size * self.world)

    @property
    def total_steps(self) -> int:
        return self.recipe.epochs * self.steps_per_epoch

    def _loader(self) -> torch.utils.data.DataLoader:
        self.dataset.set_epoch(self.epoch)
        sampler = EpochBatches(
            len(self.dataset), self.recipe.batch_size, self.recipe.seed, self.epoch,
            skip=self.step_in_epoch, rank=self.rank, world=self.world,
        )  # fmt: skip
        if sampler.batches_per_epoch() == 0:
            raise UserError(
                f"training data: {len(self.dataset)} images is fewer than one batch of {self.recipe.batch_size}"
            )
        workers = 0 if self.dataset.cache is not None else self.recipe.workers
        # A generator of its own: otherwise each new iterator draws its worker base seed from
        # the global RNG (which drives dropout), and a resumed run would drift.
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            generator=torch_generator(self.recipe.seed, "train/loader", self.epoch),
        )

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        loss = nn.functional.cross_entropy(self.net(images, labels), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(
                list(self.model.parameters()) + list(self.head.parameters()), self.recipe.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def run(
        self,
        abort_fn: Callable[[int], bool] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> bool:
        """Train to the end (True) or until ``abort_fn(global_step)`` says stop (False).

        ``progress(step, total)`` is called once after resuming (step = the steps already
        done) and after every step.
        """
        if not self.try_resume():
            # Dropout draws from the global RNG: start it from the recipe's seed, whatever the
            # process did before (resumed runs restore the checkpoint's RNG state instead).
            torch.manual_seed(derive_seed(self.recipe.seed, "train/run"))
        if progress is not None:
            progress(self.global_step, self.total_steps)
        self.model.train()
        self.head.train()
        while self.epoch < self.recipe.epochs:
            loader = self._loader()
            if self.step_in_epoch == 0:
                self.window = {"losses": [], "images": 0}
            tick = time.perf_counter()
            for images, labels in loader:
                self.window["losses"].append(self._step(images, labels))
                self.window["images"] += images.shape[0] * self.world
                self.step_in_epoch += 1
                self.global_step += 1
                if progress is not None:
                    progress(self.global_step, self.total_steps)
                if self.global_step % self.recipe.log_every == 0:
                    now = time.perf_counter()
                    losses = self.window["losses"]
                    row = dict(
                        step=self.global_step,
                        epoch=self.epoch,
                        loss=sum(losses) / len(losses),
                        lr=self.optimizer.param_groups[0]["lr"],
                        images_per_s=self.window["images"] / (now - tick),
                    )
                    self.history.append(row)
                    log.info(
                        "step %(step)d epoch %(epoch)d loss %(loss).4f lr %(lr).4g %(images_per_s).0f img/s",
                        row,
                    )
                    tick, self.window = now, {"losses": [], "images": 0}
                if (
                    self.recipe.checkpoint_every
                    and self.global_step % self.recipe.checkpoint_every == 0
                ):
                    self.save_checkpoint()
                if abort_fn is not None and abort_fn(self.global_step):
                    self.save_checkpoint()
                    return False
            self.scheduler.step()
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
            due = self.epoch % self.recipe.validate_every == 0 or self.epoch == self.recipe.epochs
            if self.val_sets and self.rank == 0 and due:
                accs = validate(self.model, self.val_sets, self.device)
                self.history.append(
                    {"epoch_end": self.epoch, "step": self.global_step, "validation": accs}
                )
                log.info(
                    "epoch %d validation %s",
                    self.epoch,
                    {k: round(v["accuracy"], 4) for k, v in accs.items()},
                )
            self.save_checkpoint()
        self.finish()
        return True

    def finish(self) -> None:
        """Write model.pt (backbone + spec), train_log.csv and validation.json."""
        if self.rank != 0:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_fr_model(self.out_dir / "model.pt", self.model.backbone, self.spec)
        with atomic_path(self.out_dir / "train_log.csv") as tmp, open(tmp, "w", newline="") as fh:
            val_names = [vs.name for vs in self.val_sets]
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([*LOG_COLUMNS, *(f"val_{n}" for n in val_names)])
            for row in self.history:
                if "loss" in row:
                    writer.writerow([row[c] for c in LOG_COLUMNS] + [""] * len(val_names))
                else:
                    accs = row["validation"]
                    writer.writerow(
                        [row["step"], row["epoch_end"], "", "", ""]
                        + [accs[n]["accuracy"] for n in val_names]
                    )
        final = next((r["validation"] for r in reversed(self.history) if "validation" in r), {})
        with atomic_path(self.out_dir / "validation.json") as tmp:
            Path(tmp).write_text(
                json.dumps(
                    {"epochs": self.epoch, "steps": self.global_step, "final": final},
                    indent=2,
                    sort_keys=True,
                )
                + "\n"
            )
