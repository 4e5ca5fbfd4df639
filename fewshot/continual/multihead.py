"""Multi-head: a new head per experience, trained and tested only among that experience's
classes (task-incremental learning with the task id known)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import Experience


@STRATEGIES.register("multihead")
class MultiHead(Strategy):
    """The softmax covers only the current experience's head, so training a new task never
    pushes down the old tasks' outputs; the shared encoder can still drift."""

    scenarios = ("task-il",)

    def loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, exp: Experience) -> torch.Tensor:
        return F.cross_entropy(model(x, model.class_mask(exp.classes)), y)
