"""Experience replay: every training batch is joined by as many items drawn from a fixed
memory of past items (`fewshot.continual.buffer.ReplayBuffer`: reservoir or class-balanced,
stored as uint8). ``ace=True`` is ER-ACE (Caccia et al. 2022): the current items' softmax
covers only the current experience's classes, so new classes do not push down the old ones'
logits, while the replayed items' softmax covers every class seen."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy, shuffled_batches
from fewshot.continual.buffer import ReplayBuffer
from fewshot.continual.model import ContinualModel, masked
from fewshot.continual.scenarios import Experience


@STRATEGIES.register("replay")
class Replay(Strategy):
    """Args: ``memory`` (items kept), ``buffer`` (``reservoir`` or ``class-balanced``), ``ace``."""

    def __init__(
        self,
        memory: int = 200,
        buffer: Literal["reservoir", "class-balanced"] = "class-balanced",
        ace: bool = False,
    ) -> None:
        self.memory, self.buffer, self.ace = int(memory), buffer, bool(ace)
        self.store = ReplayBuffer(self.memory, buffer)

    def batches(self, data, settings, generator):
        for x, y in shuffled_batches(data, settings.batch_size, generator):
            if len(self.store):
                bx, by = self.store.sample(len(y), generator)
                yield torch.cat([x, bx]), torch.cat([y, by])
            else:
                yield x, y

    def loss(self, model: ContinualModel, x: torch.Tensor, y: torch.Tensor, exp: Experience) -> torch.Tensor:
        if not self.ace or not len(self.store):
            return F.cross_entropy(model(x, model.class_mask()), y)
        n = len(y) // 2  # the first half: current items; the second: replayed (`batches`)
        logits = model.head_logits(model.features(x))
        current = F.cross_entropy(masked(logits[:n], model.class_mask(exp.classes)), y[:n])
        replayed = F.cross_entropy(masked(logits[n:], model.class_mask()), y[n:])
        return (current + replayed) / 2

    def after_experience(self, model, exp, settings, generator) -> None:
        self.store.update(exp.train, generator)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        self.store.load_state_dict(state["buffer"])
