"""The training loop: pairs -> response maps (+ boxes) -> balanced logistic loss (+ GIoU), validated each epoch
with the eval code.

A run folder holds `log.csv` (one row per epoch, epoch 0 = the untrained model), `state.pt` (everything needed to
resume), `last.pt` and `best.pt` (siamtrack checkpoints; best = highest val success AUC).
"""
from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..backbones import trunk_hooks
from ..checkpoint import save_checkpoint
from ..crop_cache import load_crop_cache
from ..errors import UserError
from ..evaluation import metrics
from ..evaluation.datasets import load_dataset
from ..evaluation.runner import run_sequence
from ..model import SiamNet
from ..progress import progress as make_progress
from ..torch_engine import TorchEngine, pick_device
from ..tracking import SiamTracker
from .data import PairDataset, mine_look_alikes
from .loss import balanced_logistic_loss, box_regression_loss, ellipse_labels, response_labels
from .nanotrack_init import load_nanotrack_weights
from .recipe import TrainConfig

LOG_FIELDS = ["epoch", "iterations", "train_loss", "val_auc", "val_precision", "val_norm_precision", "lr", "seconds"]


def freeze(model: SiamNet, recipe: TrainConfig) -> list[nn.Parameter]:
    """Freeze the trunk's leading part (what its backbone module's frozen_prefix names); returns the parameters
    that train."""
    hooks = trunk_hooks(model.config.backbone)
    for module in hooks.frozen_prefix(model.backbone, recipe.trainable_from_block, bool(recipe.init_weights)):
        module.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def set_train_mode(model: SiamNet, all_batchnorm: bool = False) -> None:
    """Train mode, but every BatchNorm of a pretrained trunk keeps its ImageNet statistics: batches of one
    object's crops are too narrow a sample to re-estimate them. all_batchnorm: every BatchNorm of the model does
    (fine-tuning a network pretrained for tracking)."""
    model.train()
    if all_batchnorm or trunk_hooks(model.config.backbone).keeps_batchnorm_statistics:
        for module in (model if all_batchnorm else model.backbone).modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()


def validate(model: SiamNet, recipe: TrainConfig, val_root: Path, device: torch.device) -> dict:
    """Success AUC and precision of the model on the val sequences, with the recipe's tracker config."""
    _, sequences, _ = load_dataset(val_root, list(recipe.val_sequences) or None)
    model.eval()
    engine = TorchEngine(model, device.type)
    per_seq = []
    for seq in sequences:
        boxes, *_ = run_sequence(seq, {"siamtrack": SiamTracker(engine, recipe.tracker_config)}, progress=False)
        per_seq.append(metrics.sequence_metrics(boxes["siamtrack"], seq.gt, seq.valid, seq.image_size))
    return metrics.overall_metrics(per_seq)


def train(recipe: TrainConfig, data_root: Path, val_root: Path | None, run_dir: Path, resume: bool = False,
          device: str = "auto", meta: dict | None = None) -> Path:
    """Train `recipe` in `run_dir` (see the module docstring for what it holds); returns the best checkpoint."""
    run = TrainingRun(recipe, run_dir, val_root, device, meta)
    if resume:
        run.resume()
    else:
        run.start_log()
    if run.start_epoch == 1 and val_root is not None:
        run.validate_untrained()
    dataset = run.pair_dataset(data_root)
    for epoch in range(run.start_epoch, recipe.epochs + 1):
        run.train_epoch(dataset, epoch)
    if not (run_dir / "best.pt").is_file():  # zero epochs without validation: the untrained model is the result
        run.save("best.pt", {**run.meta, "epoch": 0})
    return run_dir / "best.pt"


def _starting_model(recipe: TrainConfig, dev: torch.device) -> SiamNet:
    model = SiamNet(recipe.model_config, pretrained_backbone=True)
    if recipe.init_weights:
        load_nanotrack_weights(model, recipe.init_weights)
    return model.to(dev)


def _optimizer(model: SiamNet, recipe: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the parameters that train, with a linear warm-up and then a cosine down to min_lr."""
    params = freeze(model, recipe)
    # Pretrained blocks move more slowly than the freshly initialised neck and head.
    trunk = {id(p) for p in model.backbone.parameters()}
    groups = [{"params": [p for p in params if id(p) in trunk], "lr": recipe.lr * recipe.backbone_lr_factor},
              {"params": [p for p in params if id(p) not in trunk], "lr": recipe.lr}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=recipe.lr, weight_decay=recipe.weight_decay)
    total_steps = max(recipe.epochs * recipe.iterations_per_epoch, 1)
    warmup = min(100, total_steps // 10)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        floor = recipe.min_lr / recipe.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


class TrainingRun:
    """One run folder's model, optimiser and files, epoch by epoch."""

    def __init__(self, recipe: TrainConfig, run_dir: Path, val_root: Path | None, device: str,
                 meta: dict | None) -> None:
        self.dev = pick_device(device)
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(recipe.seed)
        np.random.seed(recipe.seed)
        self.recipe, self.run_dir, self.val_root = recipe, run_dir, val_root
        self.model = _starting_model(recipe, self.dev)
        self.optimizer, self.scheduler = _optimizer(self.model, recipe)
        self.state_path, self.log_path = run_dir / "state.pt", run_dir / "log.csv"
        self.start_epoch, self.best_auc = 1, -1.0
        self.meta = {**(meta or {}), "recipe": recipe.to_dict()}

    def resume(self) -> None:
        """Continue after the last epoch saved in state.pt."""
        if not self.state_path.is_file():
            raise UserError(f"--resume: no {self.state_path}; start without --resume")
        state = torch.load(self.state_path, map_location=self.dev, weights_only=True)
        if state["recipe"] != self.recipe.to_dict():
            raise UserError(f"--resume: {self.state_path} was made with a different recipe")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch, self.best_auc = state["epoch"] + 1, state["best_auc"]
        print(f"resuming after epoch {state['epoch']} (best val AUC {self.best_auc:.3f})", file=sys.stderr)

    def start_log(self) -> None:
        with open(self.log_path, "w", newline="") as f:
            csv.writer(f).writerow(LOG_FIELDS)

    def log_epoch(self, epoch: int, iterations: int, loss: float, scores: dict, seconds: float) -> None:
        with open(self.log_path, "a", newline="") as f:
            csv.writer(f).writerow([epoch, iterations, f"{loss:.5f}", f"{scores.get('auc', float('nan')):.4f}",
                                    f"{scores.get('precision', float('nan')):.4f}",
                                    f"{scores.get('norm_precision', float('nan')):.4f}",
                                    f"{max(g['lr'] for g in self.optimizer.param_groups):.2e}", f"{seconds:.1f}"])

    def validate_untrained(self) -> None:
        """Epoch 0: the starting model is the best checkpoint until an epoch beats it."""
        started = time.time()
        scores = validate(self.model, self.recipe, self.val_root, self.dev)
        self.best_auc = scores["auc"]
        self.save("best.pt", {**self.meta, "epoch": 0, "val": _brief(scores)})
        self.log_epoch(0, 0, float("nan"), scores, time.time() - started)
        print(f"epoch 0 (untrained): val AUC {scores['auc']:.3f}  precision {scores['precision']:.3f}", file=sys.stderr)

    def pair_dataset(self, data_root: Path) -> PairDataset:
        recipe = self.recipe
        folders = load_crop_cache(data_root)
        look_alikes = (_look_alikes(self.model, folders, recipe, self.run_dir, self.dev)
                       if recipe.mined_negative_prob else None)
        return PairDataset(folders, recipe, recipe.model_config, recipe.iterations_per_epoch * recipe.batch_size,
                           look_alikes)

    def train_epoch(self, dataset: PairDataset, epoch: int) -> None:
        """One epoch of batches, then validation, checkpoints, state.pt and the log row."""
        recipe, started = self.recipe, time.time()
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=recipe.batch_size, num_workers=recipe.num_workers,
                            pin_memory=self.dev.type == "cuda", drop_last=True)
        if recipe.freeze_after_epoch and epoch > recipe.freeze_after_epoch:
            # Frozen parameters get no gradient, and AdamW leaves a parameter without one untouched.
            for name, parameter in self.model.named_parameters():
                parameter.requires_grad_(name.startswith("box_head."))
        set_train_mode(self.model, recipe.frozen_batchnorm)
        losses = []
        bar = make_progress(None, f"epoch {epoch}/{recipe.epochs}", "batch", iterable=loader)
        for batch in bar:
            losses.append(self.step(*batch))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.1e}")
        bar.close()
        scores = validate(self.model, recipe, self.val_root, self.dev) if self.val_root is not None else {}
        self.save_epoch(epoch, scores)
        self.log_epoch(epoch, len(losses), float(np.mean(losses)), scores, time.time() - started)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}" +
              (f"  val AUC {scores['auc']:.3f}  precision {scores['precision']:.3f}" if scores else "") +
              f"  ({time.time() - started:.0f} s)", file=sys.stderr)

    def step(self, exemplar: torch.Tensor, search: torch.Tensor, boxes: torch.Tensor, positive: torch.Tensor) -> float:
        """One optimiser step on a batch of pairs; returns its loss."""
        dev = self.dev
        loss = batch_loss(self.model, self.recipe, exemplar.to(dev).float(), search.to(dev).float(), boxes.to(dev),
                          positive.to(dev))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def save(self, name: str, meta: dict) -> None:
        save_checkpoint(self.run_dir / name, self.model, self.recipe.tracker_config, meta)

    def save_epoch(self, epoch: int, scores: dict) -> None:
        """last.pt, epoch_NNN.pt, best.pt when the epoch is the best so far (every epoch without validation), and
        state.pt for --resume."""
        epoch_meta = {**self.meta, "epoch": epoch, "val": _brief(scores)}
        self.save("last.pt", epoch_meta)
        self.save(f"epoch_{epoch:03d}.pt", epoch_meta)
        if scores and scores["auc"] > self.best_auc:
            self.best_auc = scores["auc"]
            self.save("best.pt", epoch_meta)
        elif not scores:
            self.save("best.pt", epoch_meta)
        torch.save({"epoch": epoch, "best_auc": self.best_auc, "recipe": self.recipe.to_dict(),
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, self.state_path)


def batch_loss(model: SiamNet, recipe: TrainConfig, exemplar: torch.Tensor, search: torch.Tensor,
               boxes: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """The response-map loss on the recipe's labels, plus the weighted box loss for a model that predicts boxes."""
    m = recipe.model_config
    logits, distances = model(exemplar, search, recipe.box_head_trains_trunk)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    if recipe.labels == "ellipse":
        labels = ellipse_labels(boxes, positive, model.response_size, m.stride, m.search_size)
    else:
        labels = response_labels(centers, positive, model.response_size, m.stride, m.search_size,
                                 recipe.positive_radius)
    loss = balanced_logistic_loss(logits, labels)
    if distances is not None:
        loss = loss + recipe.box_loss_weight * box_regression_loss(distances, boxes, positive, m.stride,
                                                                   m.search_size)
    return loss


def _look_alikes(model: SiamNet, folders: list, recipe: TrainConfig, run_dir: Path, dev: torch.device) -> list:
    """The crop cache's mined look-alikes (data.mine_look_alikes) by the starting network's pooled template
    features, kept in the run folder so that --resume uses the same ones."""
    path = run_dir / "look_alikes.npz"
    if path.is_file():
        with np.load(path) as saved:  # plain arrays: no pickle
            pairs = [saved[f"folder{k}"] for k in range(len(folders))] if len(saved.files) == len(folders) else []
        if pairs and all(len(p) == len(f.files) for p, f in zip(pairs, folders)) \
                and pairs[0].shape[1] == recipe.mined_neighbours:
            return pairs
    model.eval()

    def embed(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            exemplars = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2).float()
            return model.template(exemplars).mean(dim=(2, 3)).cpu().numpy()

    pairs = mine_look_alikes(folders, embed, recipe.mined_neighbours)
    np.savez(path, **{f"folder{k}": p for k, p in enumerate(pairs)})
    return pairs


def _brief(scores: dict) -> dict:
    keys = ("auc", "precision", "norm_precision", "ao", "sr50", "sr75")
    return {k: round(float(scores[k]), 4) for k in keys if k in scores}
