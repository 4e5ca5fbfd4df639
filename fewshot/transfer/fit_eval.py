"""Train one candidate on the target and measure it: what rank-models and curves share.

A training strategy (full, partial, gradual) runs `fewshot.transfer.finetune.finetune` in
memory, with ``test`` as its validation set so that the accuracy after every epoch is known
(learning curves); the accuracy reported is the last epoch's (no selection on the test
items: ``patience=0`` and the last epoch's weights). A frozen strategy (linear-probe,
simpleshot) is fitted on the embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from fewshot.data.tensors import LabeledTensors


@dataclass
class FitOutcome:
    """The test accuracy, the model, and per epoch ``(steps done, test accuracy)``."""

    accuracy: float
    model: Any
    curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


def fit_and_test(
    encoder: Any,
    train: LabeledTensors,
    test: LabeledTensors,
    strategy: str,
    config: Any,
    encoder_name: str = "encoder",
    embeddings: torch.Tensor | None = None,
    progress: bool | None = False,
) -> FitOutcome:
    """Train ``strategy`` on ``train`` and test on ``test`` (``config``: a `FinetuneConfig`
    whose strategy is replaced by ``strategy`` for training strategies)."""
    import math
    import time

    from fewshot.transfer.export import FROZEN_STRATEGIES, fit_frozen_classifier
    from fewshot.transfer.finetune import accuracy, finetune

    started = time.perf_counter()
    device = torch.device(config.device if config.device != "auto" else "cpu")
    if strategy in FROZEN_STRATEGIES:
        model = fit_frozen_classifier(encoder.to(device).eval(), train, strategy, embeddings=embeddings)
        acc = accuracy(model, test, device)
        return FitOutcome(acc, model, [(0, acc)], round(time.perf_counter() - started, 2))
    steps = math.ceil(len(train) / config.batch_size)
    curve: list[tuple[int, float]] = []

    def record(epoch, _model) -> None:
        curve.append(((epoch.epoch + 1) * steps, epoch.val_accuracy))

    config = replace(config, strategy=strategy, patience=0)
    model, result = finetune(
        encoder, train, config, val_data=test, encoder_name=encoder_name, on_epoch=record, progress=progress
    )
    return FitOutcome(curve[-1][1], model, curve, round(time.perf_counter() - started, 2))


@torch.no_grad()
def predict(model: Any, data: LabeledTensors, device: Any = "cpu", batch_size: int = 256) -> torch.Tensor:
    """``(n,)`` predicted class ids of a fixed-class `Classifier` on every item of ``data``."""
    was = model.training
    model.eval()
    try:
        parts = [
            model.logits(data.data[i : i + batch_size].to(device)).argmax(-1).cpu()
            for i in range(0, len(data), batch_size)
        ]
    finally:
        model.train(was)
    return torch.cat(parts)


def class_report(
    model: Any, data: LabeledTensors, device: Any = "cpu", group_level: int | None = None
) -> dict:
    """Per-class and worst-class accuracy of ``model`` on ``data`` (`fewshot.class_accuracy`)."""
    from fewshot.class_accuracy import class_accuracy

    return class_accuracy(predict(model, data, device), data.labels, data.class_names, group_level)
