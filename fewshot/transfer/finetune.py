"""Fine-tune an encoder plus a new linear head on a labelled data set.

One loop for the three strategies of `fewshot.transfer.strategies` (full, partial,
gradual), with discriminative learning rates per block, AdamW with weight decay, light
augmentation, validation every epoch, early stopping and the best checkpoint kept. The epochs
run in `fewshot.run_loop` (`fewshot.transfer.finetune_loop`), so a run killed part-way
resumes from its last epoch when run again with the same settings. The result is a
`Classifier` (``learner = "classifier"`` in the checkpoint) that `fewshot predict` can use
without a support set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import DataError
from fewshot.learners.classifier import Classifier
from fewshot.transfer.finetune_config import EpochRecord, FinetuneConfig, FinetuneResult
from fewshot.transfer.finetune_loop import (
    accuracy,
    augment_batch,
    finetune_epochs,
    init_head_with_prototypes,
    run_settings,
)


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


__all__ = [
    "EpochRecord",
    "FinetuneConfig",
    "FinetuneResult",
    "accuracy",
    "augment_batch",
    "finetune",
    "init_head_with_prototypes",
    "split_items",
]
