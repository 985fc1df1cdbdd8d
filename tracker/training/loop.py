"""The training loop: pairs -> response maps (+ boxes) -> balanced logistic loss (+ GIoU), validated each epoch
with the eval code.

A run folder holds `log.csv` (one row per epoch, epoch 0 = the untrained model), `state.pt` (everything needed to
resume), `last.pt` and `best.pt` (siamtrack checkpoints; best = highest val success AUC).
"""
from __future__ import annotations

import copy
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tracker.progress import progress as make_progress

from ..checkpoint import save_checkpoint
from ..errors import UserError
from ..model import SiamNet
from .data import PairDataset, load_crop_cache, mine_look_alikes
from .loss import balanced_logistic_loss, box_regression_loss, ellipse_labels, response_labels
from .recipe import TrainConfig

LOG_FIELDS = ["epoch", "iterations", "train_loss", "val_auc", "val_precision", "val_norm_precision", "lr", "seconds"]


def freeze(model: SiamNet, recipe: TrainConfig) -> list[nn.Parameter]:
    """Freeze the pretrained trunk's early blocks; returns the parameters that train."""
    backbone = model.backbone
    if hasattr(backbone, "blocks"):  # the ImageNet EfficientNet trunk
        frozen = [backbone.stem, *backbone.blocks[: recipe.trainable_from_block]]
    elif hasattr(backbone, "features") and recipe.init_weights:  # a tracking-pretrained MobileNetV3 trunk
        frozen = list(backbone.features[: recipe.trainable_from_block])
    else:
        frozen = []
    for module in frozen:
        module.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def set_train_mode(model: SiamNet, all_batchnorm: bool = False) -> None:
    """Train mode, but every BatchNorm of a pretrained trunk keeps its ImageNet statistics: batches of one
    object's crops are too narrow a sample to re-estimate them. all_batchnorm: every BatchNorm of the model does
    (fine-tuning a network pretrained for tracking)."""
    model.train()
    if all_batchnorm or hasattr(model.backbone, "blocks"):
        for module in (model if all_batchnorm else model.backbone).modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()


def validate(model: SiamNet, recipe: TrainConfig, val_root: Path, device: torch.device) -> dict:
    from ..evaluation import metrics
    from ..evaluation.datasets import load_dataset
    from ..evaluation.runner import run_sequence
    from ..torch_engine import TorchEngine
    from ..tracking import SiamTracker

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
    from ..torch_engine import pick_device

    dev = pick_device(device)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)

    model = SiamNet(recipe.model_config, pretrained_backbone=True)
    if recipe.init_weights:
        from .nanotrack_init import load_nanotrack_weights

        load_nanotrack_weights(model, recipe.init_weights)
    model = model.to(dev)
    params = freeze(model, recipe)
    # Pretrained blocks move more slowly than the freshly initialised neck and head.
    trunk = {id(p) for p in model.backbone.parameters()}
    groups = [{"params": [p for p in params if id(p) in trunk], "lr": recipe.lr * recipe.backbone_lr_factor},
              {"params": [p for p in params if id(p) not in trunk], "lr": recipe.lr}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=recipe.lr, weight_decay=recipe.weight_decay)
    total_steps = max(recipe.epochs * recipe.iterations_per_epoch, 1)
    warmup = min(100, total_steps // 10)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine down to min_lr
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total_steps - warmup, 1)
        floor = recipe.min_lr / recipe.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    state_path, log_path = run_dir / "state.pt", run_dir / "log.csv"
    start_epoch, best_auc = 1, -1.0
    if resume:
        if not state_path.is_file():
            raise UserError(f"--resume: no {state_path}; start without --resume")
        state = torch.load(state_path, map_location=dev, weights_only=True)
        if state["recipe"] != recipe.to_dict():
            raise UserError(f"--resume: {state_path} was made with a different recipe")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_auc = state["epoch"] + 1, state["best_auc"]
        print(f"resuming after epoch {state['epoch']} (best val AUC {best_auc:.3f})", file=sys.stderr)
    else:
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(LOG_FIELDS)

    meta = {**(meta or {}), "recipe": recipe.to_dict()}

    def log_epoch(epoch: int, iterations: int, loss: float, scores: dict, seconds: float) -> None:
        with open(log_path, "a", newline="") as f:
            csv.writer(f).writerow([epoch, iterations, f"{loss:.5f}", f"{scores.get('auc', float('nan')):.4f}",
                                    f"{scores.get('precision', float('nan')):.4f}",
                                    f"{scores.get('norm_precision', float('nan')):.4f}",
                                    f"{max(g['lr'] for g in optimizer.param_groups):.2e}", f"{seconds:.1f}"])

    if start_epoch == 1 and val_root is not None:
        started = time.time()
        scores = validate(model, recipe, val_root, dev)
        best_auc = scores["auc"]
        save_checkpoint(run_dir / "best.pt", model, recipe.tracker_config, {**meta, "epoch": 0, "val": _brief(scores)})
        log_epoch(0, 0, float("nan"), scores, time.time() - started)
        print(f"epoch 0 (untrained): val AUC {scores['auc']:.3f}  precision {scores['precision']:.3f}", file=sys.stderr)

    folders = load_crop_cache(data_root)
    look_alikes = _look_alikes(model, folders, recipe, run_dir, dev) if recipe.mined_negative_prob else None
    dataset = PairDataset(folders, recipe, recipe.model_config, recipe.iterations_per_epoch * recipe.batch_size,
                          look_alikes)
    m = recipe.model_config
    for epoch in range(start_epoch, recipe.epochs + 1):
        started = time.time()
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=recipe.batch_size, num_workers=recipe.num_workers,
                            pin_memory=dev.type == "cuda", drop_last=True)
        if recipe.freeze_after_epoch and epoch > recipe.freeze_after_epoch:
            # Frozen parameters get no gradient, and AdamW leaves a parameter without one untouched.
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name.startswith("box_head."))
        set_train_mode(model, recipe.frozen_batchnorm)
        losses = []
        bar = make_progress(None, f"epoch {epoch}/{recipe.epochs}", "batch", iterable=loader)
        for exemplar, search, boxes, positive in bar:
            exemplar, search = exemplar.to(dev).float(), search.to(dev).float()
            boxes, positive = boxes.to(dev), positive.to(dev)
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
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{optimizer.param_groups[0]['lr']:.1e}")
        bar.close()
        scores = validate(model, recipe, val_root, dev) if val_root is not None else {}
        epoch_meta = {**meta, "epoch": epoch, "val": _brief(scores)}
        save_checkpoint(run_dir / "last.pt", model, recipe.tracker_config, epoch_meta)
        save_checkpoint(run_dir / f"epoch_{epoch:03d}.pt", model, recipe.tracker_config, epoch_meta)
        if scores and scores["auc"] > best_auc:
            best_auc = scores["auc"]
            save_checkpoint(run_dir / "best.pt", model, recipe.tracker_config, epoch_meta)
        elif not scores:
            save_checkpoint(run_dir / "best.pt", model, recipe.tracker_config, epoch_meta)
        torch.save({"epoch": epoch, "best_auc": best_auc, "recipe": recipe.to_dict(), "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, state_path)
        log_epoch(epoch, len(losses), float(np.mean(losses)), scores, time.time() - started)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}" +
              (f"  val AUC {scores['auc']:.3f}  precision {scores['precision']:.3f}" if scores else "") +
              f"  ({time.time() - started:.0f} s)", file=sys.stderr)
    if not (run_dir / "best.pt").is_file():  # zero epochs without validation: the untrained model is the result
        save_checkpoint(run_dir / "best.pt", model, recipe.tracker_config, {**meta, "epoch": 0})
    return run_dir / "best.pt"


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
