"""An expandable classifier on a frozen backbone: each experience adds a head for its new
classes and trains only that head (cross-entropy over every class seen); the encoder and the
old heads never change, so forgetting comes only from new classes outscoring old ones."""

from __future__ import annotations

import torch

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy
from fewshot.continual.model import ContinualModel


@STRATEGIES.register("expandable")
class Expandable(Strategy):
    """Trains the newest head on the frozen encoder's embeddings (computed once)."""

    frozen_encoder = True

    def trainable(self, model: ContinualModel) -> list[torch.nn.Parameter]:
        return list(model.heads[-1].parameters()) if model.heads else []
