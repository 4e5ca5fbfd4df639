"""MCC, minimum class confusion (Jin et al., ECCV 2020).

On a target batch, the class confusion matrix ``C = Y^T W Y`` of temperature-scaled
probabilities ``Y`` ``(B, C)`` (``W``: entropy-based item weights ``1 + exp(-H)``, normalised),
each row normalised to sum to 1; the loss is its off-diagonal mass divided by the number of
classes. Minimising it stops the model from spreading target items over confusable classes,
with no discriminator.
"""

from __future__ import annotations

import torch

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import NetworkAdapter, Step
from fewshot.adapt.cdan import entropy_weights


def class_confusion(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """MCC's loss of target logits ``(B, C)``: a scalar in ``[0, 1)``."""
    y = torch.softmax(logits / temperature, dim=-1)
    w = entropy_weights(y.detach())
    confusion = (y * w.unsqueeze(1)).T @ y
    confusion = confusion / confusion.sum(dim=1, keepdim=True).clamp_min(1e-12)
    n = logits.shape[1]
    return (confusion.sum() - torch.trace(confusion)) / n


@ADAPTERS.register("mcc")
class MCC(NetworkAdapter):
    """Args: weight: the confusion loss's weight; temperature: the paper's 2.5 (digits: 2.5)."""

    name = "mcc"

    def __init__(self, weight: float = 1.0, temperature: float = 2.5) -> None:
        self.weight, self.temperature = weight, temperature

    def loss(self, step: Step) -> torch.Tensor:
        return self.weight * class_confusion(step.lt, self.temperature)
