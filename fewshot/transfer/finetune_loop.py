"""The epochs of `fewshot.transfer.finetune.finetune`: a `fewshot.run_loop` task whose unit
is one epoch, resumable after every epoch.

After each epoch the run writes, each atomically and in this order, the best checkpoint (when
validation improved) and the state (weights, optimiser, schedule, data-order generator, RNG,
counters, history). A run killed anywhere resumes from its last state; the best weights are
read back from the checkpoint at the end, so the state never holds two models.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.checkpoints import save_checkpoint, weights_digest
from fewshot.data.tensors import LabeledTensors
from fewshot.device import resolve_device
from fewshot.learners.classifier import Classifier
from fewshot.run_loop import MixedPrecision, RunProgress, RunTask, run_units
from fewshot.transfer.finetune_config import EpochRecord, FinetuneConfig, FinetuneResult
from fewshot.transfer.sources import classifier_metadata
from fewshot.transfer.strategies import (
    block_parameters,
    freeze_batchnorm_stats,
    frozen_state,
    parameter_groups,
    set_trainable_blocks,
    trainable_blocks_at,
)


def run_settings(encoder, encoder_name: str, data, val_data, config: FinetuneConfig) -> dict:
    from fewshot.runs import data_description, json_safe

    return json_safe(
        {
            "encoder": encoder_name,
            "encoder_config": encoder.config() if hasattr(encoder, "config") else {},
            # the starting weights: a run resumes only from the encoder it started with
            "encoder_sha256": weights_digest(encoder.state_dict()),
            "finetune": {k: v for k, v in asdict(config).items() if k != "device"},
            "data": data_description(data),
            "val_data": data_description(val_data),
        }
    )


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
    """Set the head to nearest class mean on the head's inputs, tempered by the features' spread:
    ``W = 2 mu / s``, ``b = -||mu||^2 / s`` with ``s`` the mean squared distance of an item to
    its class mean, when that exceeds 1 (``s = 1`` otherwise: the head is never made sharper
    than plain nearest class mean).

    Training then starts from ProtoNet's classifier (as Proto-MAML does) instead of a random
    head whose first gradients would disturb the pretrained features. Without ``s`` the logits
    grow with the squared feature norm: ImageNet features (norms in the tens) gave a starting
    loss near 1,000 whose gradients wrecked the pretrained weights in the first epoch. The
    spread is measured in eval mode; an untrained network's BatchNorm gives train-mode
    features of another scale, hence the floor at 1.
    """
    model.eval()
    z = model.encoder.encode_batched(data.data).to(device)
    feats = model.features(z)
    n = len(model.class_names)
    labels = data.labels.to(device)
    sums = torch.zeros(n, feats.shape[1], device=device).index_add_(0, labels, feats)
    means = sums / torch.bincount(labels, minlength=n).clamp(min=1).unsqueeze(1)
    spread = (feats - means[labels]).pow(2).sum(-1).mean().clamp(min=1.0)
    model.head.weight.copy_(2 * means / spread)
    model.head.bias.copy_(-means.pow(2).sum(-1) / spread)


def finetune_epochs(encoder, data, val_data, config, files, encoder_name, metadata, on_epoch, progress):
    """The epochs; with `files`, resumable from ``files.state`` (written after every epoch)."""
    task = FinetuneEpochs(encoder, data, val_data, config, encoder_name, metadata, on_epoch)
    return finished_run(task, files, run_units(task, files, progress))


def finished_run(task: FinetuneEpochs, files, run: RunProgress) -> tuple[Classifier, FinetuneResult]:
    """The model with the best epoch's weights, and the result, once `run_units` has ended."""
    model = task.model
    if files is not None and run.best > 0:
        task.best_state = _read_weights(files.out)  # the best epoch's weights, written as it ended
    if task.best_state is not None:
        model.load_state_dict(task.best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    result = FinetuneResult(
        best_val_accuracy=run.best_score,
        best_epoch=run.best - 1,
        epochs_done=len(task.history),
        stopped_early=run.stopped_early,
        checkpoint=None if files is None else str(files.out),
        history=task.history,
    )
    return model, result


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from fewshot.checkpoints import read_checkpoint

    return read_checkpoint(path)[0]


class FinetuneEpochs(RunTask):
    """Fine-tuning as a `fewshot.run_loop` task: a unit is one epoch, validated at its end."""

    command, unit = "finetune", "epoch"

    def __init__(
        self, encoder, data, val_data, config: FinetuneConfig, encoder_name, metadata, on_epoch
    ) -> None:
        self.encoder, self.data, self.val_data, self.config = encoder, data, val_data, config
        self.encoder_name, self.metadata, self.on_epoch = encoder_name, metadata, on_epoch
        self.total, self.patience = config.epochs, config.patience
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.model = Classifier(encoder, data.class_names, normalize=config.normalize).to(self.device)
        self.n_blocks = len(block_parameters(encoder))
        self._blocks_at(0)  # refuses a strategy or --freeze that does not fit the encoder
        groups = parameter_groups(
            encoder, self.model.head, config.lr, config.head_lr, config.lr_decay, config.weight_decay
        )
        self.optimizer = torch.optim.AdamW(groups)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.epochs)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.amp = MixedPrecision(self.device, config.mixed_precision)
        self.history: list[EpochRecord] = []
        self.best_state: dict[str, torch.Tensor] | None = None

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"].cpu())
        # read here, so a state without them is the one `load_state` error
        best = state["best_epoch"] + 1
        self._resumed = RunProgress(
            state["epoch"], state["best_acc"], best, state["bad_epochs"], state["stopped_early"]
        )
        self._history = state["history"]

    def progress_from(self, state: dict) -> RunProgress:
        return self._resumed

    def start(self, progress: RunProgress, resumed: bool) -> None:
        if resumed:
            self.history = [EpochRecord(**r) for r in self._history]
        elif self.config.head_init == "prototypes":
            init_head_with_prototypes(self.model, self.data, self.device)
        self.meta = {
            **classifier_metadata(self.encoder_name, self.model),
            **(self.metadata or {}),
            "finetune": {k: v for k, v in asdict(self.config).items() if k != "device"},
            "dataset": self.data.info,
        }

    def run_unit(self, index: int) -> None:
        self.history.append(self._epoch(index))
        self.schedule.step()

    def postfix(self, done: int) -> dict[str, str]:
        record = self.history[-1]
        return {"loss": f"{record.train_loss:.3f}", "val": f"{record.val_accuracy:.3f}"}

    def validate(self, done: int) -> float:
        """The epoch's validation accuracy (measured as it ended); calls ``on_epoch`` first."""
        if self.on_epoch is not None:
            self.on_epoch(self.history[-1], self.model)
        return self.history[-1].val_accuracy

    def keep_best(self, out: Path | None, done: int, score: float) -> None:
        if out is None:
            self.best_state = copy.deepcopy(self.model.state_dict())
            return
        self.meta.update(val_accuracy=score, best_epoch=done - 1)
        save_checkpoint(out, self.model, self.meta)

    def training_state(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        return {**state, "schedule": self.schedule.state_dict(), "generator": self.generator.get_state()}

    def state(self, progress: RunProgress) -> dict[str, Any]:
        run = {"epoch": progress.done, "best_acc": progress.best_score, "best_epoch": progress.best - 1}
        run.update(bad_epochs=progress.bad_rounds, stopped_early=progress.stopped_early)
        return {**self.training_state(), **run, "history": [asdict(r) for r in self.history]}

    def _blocks_at(self, epoch: int) -> int:
        config = self.config
        return trainable_blocks_at(
            config.strategy, self.n_blocks, config.freeze, epoch, config.unfreeze_every
        )

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """One optimiser step on items ``x`` ``(B, ...)`` with labels ``y`` ``(B,)``: the batch's
        loss sum and correct count (`fewshot.scale.dist_finetune` shares it among ranks)."""
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        with self.amp.autocast():
            logits = self.model.logits(x)
            loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item() * y.shape[0], int((logits.argmax(-1) == y).sum())

    def _epoch(self, epoch: int) -> EpochRecord:
        """One pass over the data with the blocks of `epoch`'s phase trainable, then validation."""
        started = time.perf_counter()
        config, data, model = self.config, self.data, self.model
        n_train = self._blocks_at(epoch)
        set_trainable_blocks(self.encoder, n_train)
        model.train()
        freeze_batchnorm_stats(self.encoder, every=config.freeze_batchnorm)
        order = torch.randperm(len(data), generator=self.generator)
        total_loss, total_correct = 0.0, 0
        for start in range(0, len(data), config.batch_size):
            idx = order[start : start + config.batch_size]
            x, y = data.data[idx], data.labels[idx]
            if config.augment and x.dim() == 4:
                x = augment_batch(x, self.generator, config.hflip)
            loss_sum, correct = self.train_batch(x, y)
            total_loss += loss_sum
            total_correct += correct
        return EpochRecord(
            epoch=epoch,
            trainable_blocks=n_train,
            frozen_blocks=frozen_state(self.encoder),
            train_loss=total_loss / len(data),
            train_accuracy=total_correct / len(data),
            val_accuracy=accuracy(model, self.val_data, self.device),
            seconds=round(time.perf_counter() - started, 2),
        )


__all__ = [
    "FinetuneEpochs",
    "accuracy",
    "augment_batch",
    "finetune_epochs",
    "finished_run",
    "init_head_with_prototypes",
]
