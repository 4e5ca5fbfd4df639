"""Learning without Forgetting (Li & Hoiem 2016).

While training experience k > 0, a frozen copy of the model after experience k - 1 labels
each batch softly: the loss adds ``alpha * T^2 * KL(softmax(old / T) || softmax(new / T))``
over the logits of the classes the old model had seen, ``T`` the temperature.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import Experience


@STRATEGIES.register("lwf")
class LwF(Strategy):
    """Args: ``alpha`` (the distillation term's weight), ``temperature``."""

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0) -> None:
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.previous: ContinualModel | None = None

    def loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, exp: Experience) -> torch.Tensor:
        logits = model(x, model.class_mask())
        loss = F.cross_entropy(logits, y)
        if self.previous is None:
            return loss
        old_classes = torch.as_tensor(self.previous.seen, device=x.device)
        with torch.no_grad():
            teacher = self.previous(x)[:, old_classes] / self.temperature
        student = logits[:, old_classes] / self.temperature
        distill = F.kl_div(
            F.log_softmax(student, -1), F.log_softmax(teacher, -1), log_target=True, reduction="batchmean"
        )
        return loss + self.alpha * self.temperature**2 * distill

    def after_experience(self, model, exp, settings, generator) -> None:
        self.previous = copy.deepcopy(model).eval()
        for p in self.previous.parameters():
            p.requires_grad_(False)

    def state_dict(self) -> dict[str, Any]:
        if self.previous is None:
            return {}
        return {"structure": self.previous.structure(), "weights": self.previous.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        if not state:
            return
        self.previous = copy.deepcopy(model)
        self.previous.rebuild(state["structure"])
        self.previous.load_state_dict(state["weights"])
        self.previous.eval()
        for p in self.previous.parameters():
            p.requires_grad_(False)
