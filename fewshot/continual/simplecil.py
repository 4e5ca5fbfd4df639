"""SimpleCIL (Zhou et al. 2023, "Revisiting class-incremental learning with pre-trained models"):
a frozen pretrained encoder and a cosine classifier whose weights are the class means.

Each class's prototype is the mean of its items' L2-normalised embeddings, normalised again;
an item scores ``scale * cos(f(x), prototype_c)``. Prototypes are fitted once, class by class,
when their experience arrives, and never change: nothing learned is ever overwritten, so the
accuracy on a class can drop only because later classes compete with it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import Experience


@STRATEGIES.register("simplecil")
class SimpleCIL(Strategy):
    """Args: ``scale`` (the cosine's temperature: it changes the probabilities, not the ranking)."""

    frozen_encoder = True
    normalize = True

    def __init__(self, scale: float = 16.0) -> None:
        self.scale = float(scale)

    def trainable(self, model: ContinualModel) -> list[torch.nn.Parameter]:
        return []

    @torch.no_grad()
    def before_experience(self, model: ContinualModel, exp: Experience, generator: torch.Generator) -> None:
        head = model.add_classes(exp.classes)
        if head is None:
            return
        device = head.weight.device
        z = torch.cat([model.features(x.to(device)) for x in exp.train.data.split(1024)])
        labels = exp.train.labels.to(device)
        classes = model.head_classes[-1]
        prototypes = torch.stack([z[labels == c].mean(0) for c in classes])
        head.weight.copy_(self.scale * F.normalize(prototypes, dim=-1))
        head.bias.zero_()
