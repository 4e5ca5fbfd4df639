"""Fine-tune an encoder plus a new linear head on a labelled data set.

One loop for the three strategies of `fewshot.transfer.strategies` (full, partial,
gradual), with discriminative learning rates per block, AdamW with weight decay, light
augmentation, validation every epoch, early stopping and the best checkpoint kept. The
result is a `Classifier` (``learner = "classifier"`` in the checkpoint) that `fewshot predict`
can use without a support set.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fewshot.checkpoints import save_checkpoint
from fewshot.data.tensors import LabeledTensors
from fewshot.device import autocast_dtype, resolve_device
from fewshot.errors import DataError, FewshotError
from fewshot.learners.classifier import Classifier
from fewshot.transfer.sources import classifier_metadata
from fewshot.transfer.strategies import (
    STRATEGIES,
    block_parameters,
    freeze_batchnorm_stats,
    frozen_state,
    parameter_groups,
    set_trainable_blocks,
    trainable_blocks_at,
)


@dataclass
class FinetuneConfig:
    """Hyperparameters of a fine-tuning run.

    ``lr`` is the top block's learning rate: 1e-4 by default, ten times below the 1e-3 that
    `fewshot train` uses from scratch, so pretrained features are adjusted, not erased.
    """

    strategy: str = "full"
    freeze: int = 0  # blocks frozen at the input side (partial; also a floor for gradual)
    epochs: int = 20
    lr: float = 1e-4
    head_lr: float = 1e-3
    lr_decay: float = 1.0  # discriminative rates: block i of n gets lr * lr_decay ** (n-1-i)
    weight_decay: float = 1e-4
    batch_size: int = 64
    augment: bool = True
    hflip: bool = False  # horizontal flips (off by default: wrong for characters and text)
    val_fraction: float = 0.2  # items per class held out for validation when no val set is given
    patience: int = 5  # epochs without improvement before stopping; 0 = never stop early
    unfreeze_every: int = 2  # gradual: epochs per phase
    normalize: bool = False  # L2-normalise embeddings before the head
    head_init: str = "prototypes"  # "prototypes": start as nearest class mean; "random"
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True  # CUDA only

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise FewshotError(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        for name in ("epochs", "batch_size", "unfreeze_every"):
            if getattr(self, name) < 1:
                raise FewshotError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.head_lr <= 0:
            raise FewshotError("learning rates must be positive")
        if self.head_init not in ("prototypes", "random"):
            raise FewshotError(f"head_init must be 'prototypes' or 'random', got {self.head_init!r}")
        if not 0 < self.val_fraction < 1:
            raise FewshotError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")


@dataclass
class EpochRecord:
    epoch: int
    trainable_blocks: int
    frozen_blocks: list[bool]
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float


@dataclass
class FinetuneResult:
    best_val_accuracy: float
    best_epoch: int
    epochs_done: int
    stopped_early: bool
    checkpoint: str | None
    history: list[EpochRecord] = field(default_factory=list)


def split_items(
    data: LabeledTensors, fraction: float, seed: int = 0
) -> tuple[LabeledTensors, LabeledTensors]:
    """Hold out ``fraction`` of each class's items (at least one, never all) for validation."""
    rng = np.random.default_rng(seed)
    labels = data.labels.numpy()
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        items = rng.permutation(np.nonzero(labels == c)[0])
        if items.size < 2:
            raise DataError(
                f"class {data.class_names[c]!r} has {items.size} item: fine-tuning needs at least 2 "
                "per class (one to train, one to validate)"
            )
        n_val = min(items.size - 1, max(1, round(fraction * items.size)))
        val_idx.extend(items[:n_val])
        train_idx.extend(items[n_val:])

    def take(idx):
        idx = torch.as_tensor(np.sort(np.asarray(idx)), dtype=torch.long)
        return LabeledTensors(data.data[idx], data.labels[idx], data.class_names, dict(data.info))

    return take(train_idx), take(val_idx)


def augment_batch(x: torch.Tensor, generator: torch.Generator, hflip: bool) -> torch.Tensor:
    """Random translations of up to 1/8 of the side (zero padding) and optional flips: ``(B, C, H, W)``."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def accuracy(model: Classifier, data: LabeledTensors, device: torch.device, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on every item of ``data``."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, len(data), batch_size):
            x = data.data[i : i + batch_size].to(device)
            y = data.labels[i : i + batch_size].to(device)
            correct += int((model.logits(x).argmax(-1) == y).sum())
    finally:
        model.train(was_training)
    return correct / max(1, len(data))


@torch.no_grad()
def init_head_with_prototypes(model: Classifier, data: LabeledTensors, device: torch.device) -> None:
    """Set the head to nearest class mean on the head's inputs: ``W = 2 mu``, ``b = -||mu||^2``.

    Training then starts from ProtoNet's classifier (as Proto-MAML does) instead of a random
    head whose first gradients would disturb the pretrained features.
    """
    model.eval()
    z = model.encoder.encode_batched(data.data).to(device)
    feats = model.features(z)
    n = len(model.class_names)
    labels = data.labels.to(device)
    sums = torch.zeros(n, feats.shape[1], device=device).index_add_(0, labels, feats)
    means = sums / torch.bincount(labels, minlength=n).clamp(min=1).unsqueeze(1)
    model.head.weight.copy_(2 * means)
    model.head.bias.copy_(-means.pow(2).sum(-1))


def finetune(
    encoder: torch.nn.Module,
    data: LabeledTensors,
    config: FinetuneConfig,
    out: str | Path | None = None,
    val_data: LabeledTensors | None = None,
    encoder_name: str = "conv4",
    metadata: dict[str, Any] | None = None,
    on_epoch: Callable[[EpochRecord, Classifier], None] | None = None,
    progress: bool = True,
) -> tuple[Classifier, FinetuneResult]:
    """Fine-tune ``encoder`` with a new head on ``data`` (items ``(n, ...)``, labels ``(n,)``).

    Args:
        encoder: a pretrained `Encoder` (changed in place).
        data: labelled training items; all its classes are the classifier's classes.
        config: the strategy and hyperparameters.
        out: where to write the best checkpoint (``.safetensors``); None keeps it in memory.
        val_data: validation items of the same classes; by default ``config.val_fraction`` of
            each class of ``data`` is held out.
        encoder_name: the encoder's registry name, stored in the checkpoint.
        on_epoch: called after every epoch with its record and the model.

    Returns:
        The classifier with the best validation weights loaded, and the run's result.
    """
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    config.check()
    if val_data is None:
        data, val_data = split_items(data, config.val_fraction, config.seed)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = Classifier(encoder, data.class_names, normalize=config.normalize).to(device)
    if config.head_init == "prototypes":
        init_head_with_prototypes(model, data, device)
    n_blocks = len(block_parameters(encoder))
    trainable_blocks_at(config.strategy, n_blocks, config.freeze, 0, config.unfreeze_every)  # validates
    optimizer = torch.optim.AdamW(
        parameter_groups(encoder, model.head, config.lr, config.head_lr, config.lr_decay, config.weight_decay)
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    amp_dtype = autocast_dtype(device) if config.mixed_precision else None
    generator = torch.Generator().manual_seed(config.seed)

    meta = {
        **classifier_metadata(encoder_name, model),
        **(metadata or {}),
        "finetune": {k: v for k, v in asdict(config).items() if k != "device"},
        "dataset": data.info,
    }
    best_acc, best_epoch, best_state, bad_epochs = -math.inf, -1, None, 0
    history: list[EpochRecord] = []
    stopped_early = False
    bar = tqdm(total=config.epochs, desc="finetune", unit="epoch", disable=not show_progress(progress))
    try:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            n_train = trainable_blocks_at(
                config.strategy, n_blocks, config.freeze, epoch, config.unfreeze_every
            )
            set_trainable_blocks(encoder, n_train)
            model.train()
            freeze_batchnorm_stats(encoder)
            order = torch.randperm(len(data), generator=generator)
            total_loss, total_correct = 0.0, 0
            for start in range(0, len(data), config.batch_size):
                idx = order[start : start + config.batch_size]
                x, y = data.data[idx], data.labels[idx]
                if config.augment and x.dim() == 4:
                    x = augment_batch(x, generator, config.hflip)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
                with ctx:
                    logits = model.logits(x)
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * y.shape[0]
                total_correct += int((logits.argmax(-1) == y).sum())
            schedule.step()
            val_acc = accuracy(model, val_data, device)
            record = EpochRecord(
                epoch=epoch,
                trainable_blocks=n_train,
                frozen_blocks=frozen_state(encoder),
                train_loss=total_loss / len(data),
                train_accuracy=total_correct / len(data),
                val_accuracy=val_acc,
                seconds=round(time.perf_counter() - started, 2),
            )
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record.train_loss:.3f}", val=f"{val_acc:.3f}", blocks=n_train)
            if on_epoch is not None:
                on_epoch(record, model)
            if val_acc > best_acc:
                best_acc, best_epoch, bad_epochs = val_acc, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
                if out is not None:
                    meta.update(val_accuracy=val_acc, best_epoch=epoch)
                    save_checkpoint(out, model, meta)
            else:
                bad_epochs += 1
                if config.patience and bad_epochs >= config.patience:
                    stopped_early = True
                    break
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    result = FinetuneResult(
        best_val_accuracy=best_acc,
        best_epoch=best_epoch,
        epochs_done=len(history),
        stopped_early=stopped_early,
        checkpoint=None if out is None else str(out),
        history=history,
    )
    return model, result
