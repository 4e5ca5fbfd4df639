"""The multi-task model: one shared encoder, one linear head per task, and the loss weighting."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from fewshot.multitask.weighting import LossWeighting


class MultiTaskModel(nn.Module):
    """``logits(x, t) = heads[t](encoder(x))``.

    Args:
        encoder: an `Encoder`, ``(n, ...)`` -> ``(n, embed_dim)``, shared by every task.
        classes_per_task: ``C_t`` of each task (head ``t``: ``(n, embed_dim)`` -> ``(n, C_t)``).
        weighting: how the tasks' losses add up (holds the learned ``s_t`` when uncertainty).
    """

    def __init__(self, encoder: nn.Module, classes_per_task: Sequence[int], weighting: LossWeighting) -> None:
        super().__init__()
        self.encoder, self.weighting = encoder, weighting
        self.heads = nn.ModuleList(nn.Linear(encoder.embed_dim, int(c)) for c in classes_per_task)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """``(n, ...)`` -> ``(n, C_task)``."""
        return self.heads[task](self.encoder(x).float())

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, task: int, batch_size: int = 512) -> float:
        """Top-1 accuracy of head `task` on items ``(n, ...)`` with labels ``(n,)`` in ``0..C_t-1``."""
        self.eval()
        device = next(self.parameters()).device
        correct = 0
        for start in range(0, len(y), batch_size):
            logits = self(x[start : start + batch_size].to(device), task)
            correct += int((logits.argmax(-1).cpu() == y[start : start + batch_size]).sum())
        return correct / max(1, len(y))

    def classifier(self, task: int, class_names: Sequence[str]):
        """Head `task` on a copy of the shared encoder as a fixed-class `Classifier` (on CPU),
        which `fewshot predict` and `fewshot eval` load once saved."""
        from fewshot.learners.classifier import Classifier

        model = Classifier(copy.deepcopy(self.encoder).cpu(), list(class_names))
        with torch.no_grad():
            model.head.weight.copy_(self.heads[task].weight)
            model.head.bias.copy_(self.heads[task].bias)
        return model.eval()


__all__ = ["MultiTaskModel"]
