"""Elastic Weight Consolidation (Kirkpatrick et al. 2017), with online EWC (Schwarz et al. 2018)
as an option.

After experience k the diagonal empirical Fisher ``F_k = E_batches[(d loss / d theta)^2]``
(squared mini-batch gradients of the cross-entropy on the experience's training items,
averaged over batches, as Avalanche computes it) and the weights ``theta*_k`` are kept. While
training later experiences the loss gets ``(lambda / 2) * sum_k sum_i F_k,i (theta_i -
theta*_k,i)^2``. Online EWC keeps one ``F = decay * F + F_k`` and the latest ``theta*``
instead of one pair per experience.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy, TrainSettings, anchor, quadratic_penalty, shuffled_batches
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import Experience


def diagonal_fisher(
    model: ContinualModel, exp: Experience, settings: TrainSettings, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Squared cross-entropy gradients per parameter, averaged over mini-batches of ``exp.train``."""
    fisher = {name: torch.zeros_like(p) for name, p in model.named_parameters() if p.requires_grad}
    mask, batches = model.class_mask(), 0
    for x, y in shuffled_batches(exp.train, settings.batch_size, generator):
        model.zero_grad(set_to_none=True)
        x, y = x.to(settings.device), y.to(settings.device)
        F.cross_entropy(model(x, mask), y).backward()
        for name, p in model.named_parameters():
            if p.grad is not None and name in fisher:
                fisher[name] += p.grad.detach().pow(2)
        batches += 1
    model.zero_grad(set_to_none=True)
    return {name: f / max(1, batches) for name, f in fisher.items()}


@STRATEGIES.register("ewc")
class EWC(Strategy):
    """Args: ``ewc_lambda`` (the penalty's weight), ``online`` (one decayed Fisher), ``decay``
    (online EWC's gamma)."""

    def __init__(self, ewc_lambda: float = 100.0, online: bool = False, decay: float = 1.0) -> None:
        self.ewc_lambda, self.online, self.decay = float(ewc_lambda), bool(online), float(decay)
        self.fishers: list[dict[str, torch.Tensor]] = []
        self.anchors: list[dict[str, torch.Tensor]] = []

    def penalty(self, model: ContinualModel) -> torch.Tensor | float:
        if not self.fishers:
            return 0.0
        total = sum(quadratic_penalty(model, f, a) for f, a in zip(self.fishers, self.anchors, strict=True))
        return 0.5 * self.ewc_lambda * total

    def after_experience(self, model, exp, settings, generator) -> None:
        fisher = diagonal_fisher(model, exp, settings, generator)
        if self.online and self.fishers:
            old = self.fishers[0]
            fisher = {
                k: v + self.decay * old[k] if k in old and old[k].shape == v.shape else v
                for k, v in fisher.items()
            }
            self.fishers, self.anchors = [], []
        self.fishers.append(fisher)
        self.anchors.append(anchor(model))

    def state_dict(self) -> dict[str, Any]:
        return {"fishers": self.fishers, "anchors": self.anchors}

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        self.fishers, self.anchors = state["fishers"], state["anchors"]
