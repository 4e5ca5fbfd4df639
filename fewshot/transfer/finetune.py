"""Fine-tune an encoder plus a new linear head on a labelled data set.

One loop for the three strategies of `fewshot.transfer.strategies` (full, partial,
gradual), with discriminative learning rates per block, AdamW with weight decay, light
augmentation, validation every epoch, early stopping and the best checkpoint kept. A run
killed part-way resumes from its last epoch when run again with the same settings
(`fewshot.transfer.finetune_loop`). The
result is a `Classifier` (``learner = "classifier"`` in the checkpoint) that `fewshot predict`
can use without a support set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError, FewshotError
from fewshot.learners.classifier import Classifier
from fewshot.transfer.strategies import (
    STRATEGIES,
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
        """Refuse impossible settings in one line naming the option (``--epochs``, ...)."""
        if self.strategy not in STRATEGIES:
            raise FewshotError(f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}")
        minimum = {"epochs": 1, "batch_size": 1, "unfreeze_every": 1, "freeze": 0, "patience": 0, "seed": 0}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise FewshotError(f"{_option(name)} must be a whole number of at least {low}, got {value!r}")
        for name in ("lr", "head_lr", "lr_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise FewshotError(f"{_option(name)} must be a positive number, got {value!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise FewshotError(f"--weight-decay must be zero or positive, got {self.weight_decay!r}")
        if self.head_init not in ("prototypes", "random"):
            raise FewshotError(f"head_init must be 'prototypes' or 'random', got {self.head_init!r}")
        if not 0 < self.val_fraction < 1:
            raise FewshotError(f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


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
    resume: bool = True,
) -> tuple[Classifier, FinetuneResult]:
    """Fine-tune ``encoder`` with a new head on ``data`` (items ``(n, ...)``, labels ``(n,)``).

    Args:
        encoder: a pretrained `Encoder` (changed in place).
        data: labelled training items; all its classes are the classifier's classes.
        config: the strategy and hyperparameters.
        out: where to write the best checkpoint (``.safetensors``); None keeps it in memory.
            Beside it the run keeps ``<out>.state.pt`` (the state after the last epoch) and
            ``<out>.run.json`` (its settings, then its result).
        val_data: validation items of the same classes; by default ``config.val_fraction`` of
            each class of ``data`` is held out.
        encoder_name: the encoder's registry name, stored in the checkpoint.
        on_epoch: called after every epoch this call runs, with its record and the model.
        resume: continue a run with the same settings found at `out` (one killed part-way,
            or finished); other settings are refused. False deletes it and starts over.

    Returns:
        The classifier with the best validation weights loaded, and the run's result.
    """
    from fewshot.runs import check_output_file, finish_run, open_run
    from fewshot.transfer.finetune_loop import finetune_epochs, run_settings

    config.check()
    if out is not None:
        out = check_output_file(out, "--out", suffix="")
    if val_data is None:
        data, val_data = split_items(data, config.val_fraction, config.seed)
    settings = run_settings(encoder, encoder_name, data, val_data, config)
    if out is None:
        return finetune_epochs(
            encoder, data, val_data, config, None, encoder_name, metadata, on_epoch, progress
        )
    with open_run(out, settings, resume, "finetune", "this fine-tuning run") as files:
        model, result = finetune_epochs(
            encoder, data, val_data, config, files, encoder_name, metadata, on_epoch, progress
        )
        finish_run(files, settings, "finetune", **{k: v for k, v in asdict(result).items() if k != "history"})
    return model, result
