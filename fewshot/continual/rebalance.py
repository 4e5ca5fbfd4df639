"""What replay does with its memory between experiences (`fewshot.continual.replay`): the
memory items' features (the heads' inputs, for the distillation targets), and a re-fit of the
heads on those frozen features (class-balanced fine-tuning)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fewshot.continual.base import TrainSettings
from fewshot.continual.model import ContinualModel, masked
from fewshot.data.tensors import LabeledTensors


@torch.no_grad()
def memory_features(
    model: ContinualModel, memory: LabeledTensors, device: Any, batch: int = 256
) -> torch.Tensor:
    """The heads' inputs ``(m, d)`` for every memory item, in eval mode and float32."""
    model.eval()
    parts = [model.features(memory.data[i : i + batch].to(device)) for i in range(0, len(memory), batch)]
    return torch.cat(parts)


def refit_heads(
    model: ContinualModel,
    features: torch.Tensor,
    labels: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
    epochs: int,
) -> None:
    """Train only the heads for `epochs` passes over the memory's `features` ``(m, d)`` (from
    `memory_features`: the encoder is frozen, so they are computed once) and `labels` ``(m,)``:
    mini-batches of ``settings.batch_size``, SGD with momentum 0.9 at ``settings.lr``,
    cross-entropy over every class seen."""
    z, y = features, labels.to(features.device)
    params = [p for head in model.heads for p in head.parameters()]
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=0.9)
    mask = model.class_mask()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=generator).split(settings.batch_size):
            idx = idx.to(z.device)
            loss = F.cross_entropy(masked(model.head_logits(z[idx]), mask), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


__all__ = ["memory_features", "refit_heads"]
