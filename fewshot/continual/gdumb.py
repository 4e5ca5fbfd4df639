"""GDumb (Prabhu et al. 2020): keep a class-balanced memory, and after each experience train a
model from its initial weights on the memory alone. It ignores the stream beyond what the
memory holds, which makes it a strong check on whether a strategy learns from the stream.

The memory is `fewshot.continual.buffer.ReplayBuffer` with the ``class-balanced`` policy: at
the end of each experience the same memory GDumb's greedy sampler reaches when classes arrive
experience by experience (equal slots per class seen)."""

from __future__ import annotations

from typing import Any

import torch

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy
from fewshot.continual.buffer import ReplayBuffer
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import Experience
from fewshot.data.tensors import LabeledTensors


@STRATEGIES.register("gdumb")
class GDumb(Strategy):
    """Args: ``memory`` (items kept)."""

    def __init__(self, memory: int = 200) -> None:
        self.memory = int(memory)
        self.store = ReplayBuffer(self.memory, "class-balanced")
        self.initial: dict[str, Any] | None = None

    def before_experience(self, model: ContinualModel, exp: Experience, generator: torch.Generator) -> None:
        if self.initial is None:
            self.initial = {k: v.clone() for k, v in model.encoder.state_dict().items()}
        model.add_classes(exp.classes)
        self.store.update(exp.train, generator)
        model.encoder.load_state_dict(self.initial)
        for head in model.heads:  # fresh heads: the model starts over on the memory
            head.reset_parameters()

    def training_data(self, exp: Experience) -> LabeledTensors:
        return self.store.data()

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.store.state_dict(), "initial": self.initial}

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        self.store.load_state_dict(state["buffer"])
        self.initial = state["initial"]
