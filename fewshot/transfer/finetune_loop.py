"""The epochs of `fewshot.transfer.finetune.finetune`, resumable after every epoch.

After each epoch the run writes, each atomically and in this order, the best checkpoint (when
validation improved) and the state (weights, optimiser, schedule, data-order generator, RNG,
counters, history). A run killed anywhere resumes from its last state; the best weights are
read back from the checkpoint at the end, so the state never holds two models.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.checkpoints import save_checkpoint, weights_digest
from fewshot.device import autocast_dtype, resolve_device
from fewshot.faults import crash_point
from fewshot.learners.classifier import Classifier
from fewshot.transfer.finetune import (
    EpochRecord,
    FinetuneConfig,
    FinetuneResult,
    accuracy,
    augment_batch,
    init_head_with_prototypes,
)
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


def finetune_epochs(encoder, data, val_data, config, files, encoder_name, metadata, on_epoch, progress):
    """The epochs; with `files`, resumable from ``files.state`` (written after every epoch)."""
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress
    from fewshot.runs import load_state, save_state

    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = Classifier(encoder, data.class_names, normalize=config.normalize).to(device)
    n_blocks = len(block_parameters(encoder))
    trainable_blocks_at(config.strategy, n_blocks, config.freeze, 0, config.unfreeze_every)  # validates
    optimizer = torch.optim.AdamW(
        parameter_groups(encoder, model.head, config.lr, config.head_lr, config.lr_decay, config.weight_decay)
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    generator = torch.Generator().manual_seed(config.seed)
    run: dict[str, Any] = {"epoch": 0, "best_acc": -math.inf, "best_epoch": -1, "bad_epochs": 0}
    run.update(stopped_early=False, history=[])

    def restore(state: dict) -> None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"].cpu())
        run.update({k: state[k] for k in run})

    if files is not None and files.state.exists():
        load_state(files.state, device, restore)
    elif config.head_init == "prototypes":
        init_head_with_prototypes(model, data, device)
    meta = {
        **classifier_metadata(encoder_name, model),
        **(metadata or {}),
        "finetune": {k: v for k, v in asdict(config).items() if k != "device"},
        "dataset": data.info,
    }
    history = [EpochRecord(**r) for r in run["history"]]
    best_state = None
    first = config.epochs if run["stopped_early"] else run["epoch"]
    bar = tqdm(
        total=config.epochs, initial=first, desc="finetune", unit="epoch", disable=not show_progress(progress)
    )
    try:
        for epoch in range(first, config.epochs):
            record = _epoch(
                model, encoder, data, val_data, config, epoch, n_blocks, optimizer, generator, device
            )
            schedule.step()
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record.train_loss:.3f}", val=f"{record.val_accuracy:.3f}")
            if on_epoch is not None:
                on_epoch(record, model)
            run.update(epoch=epoch + 1, history=[asdict(r) for r in history])
            if record.val_accuracy > run["best_acc"]:
                run.update(best_acc=record.val_accuracy, best_epoch=epoch, bad_epochs=0)
                best_state = copy.deepcopy(model.state_dict()) if files is None else None
                if files is not None:
                    meta.update(val_accuracy=record.val_accuracy, best_epoch=epoch)
                    save_checkpoint(files.out, model, meta)
                    crash_point("finetune.checkpoint")
            else:
                run["bad_epochs"] += 1
                run["stopped_early"] = bool(config.patience and run["bad_epochs"] >= config.patience)
            if files is not None:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
                state.update(schedule=schedule.state_dict(), generator=generator.get_state(), **run)
                save_state(files.state, state, device)
                crash_point("finetune.state")
            if run["stopped_early"]:
                break
    finally:
        bar.close()
    if files is not None and run["best_epoch"] >= 0:
        best_state = _read_weights(files.out)  # the best epoch's weights, written as it ended
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    result = FinetuneResult(
        best_val_accuracy=run["best_acc"],
        best_epoch=run["best_epoch"],
        epochs_done=len(history),
        stopped_early=run["stopped_early"],
        checkpoint=None if files is None else str(files.out),
        history=history,
    )
    return model, result


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from fewshot.checkpoints import read_checkpoint

    return read_checkpoint(path)[0]


def _epoch(
    model, encoder, data, val_data, config, epoch, n_blocks, optimizer, generator, device
) -> EpochRecord:
    """One pass over ``data`` with the blocks of `epoch`'s phase trainable, then validation."""
    started = time.perf_counter()
    amp_dtype = autocast_dtype(device) if config.mixed_precision else None
    n_train = trainable_blocks_at(config.strategy, n_blocks, config.freeze, epoch, config.unfreeze_every)
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
    return EpochRecord(
        epoch=epoch,
        trainable_blocks=n_train,
        frozen_blocks=frozen_state(encoder),
        train_loss=total_loss / len(data),
        train_accuracy=total_correct / len(data),
        val_accuracy=accuracy(model, val_data, device),
        seconds=round(time.perf_counter() - started, 2),
    )
