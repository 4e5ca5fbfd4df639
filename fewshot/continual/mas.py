"""Memory Aware Synapses (Aljundi et al. 2018).

After each experience the importance of every parameter is the mean absolute gradient of the
squared L2 norm of the outputs (the logits of the classes seen so far), over mini-batches of
the experience's training items, with no labels: ``Omega_new = E_batches |d ||f(x)||^2 / d
theta|``, accumulated as ``Omega = decay * Omega + (1 - decay) * Omega_new`` (the first one
taken as it is). Later experiences add ``lambda * sum_i Omega_i (theta_i - theta*_i)^2``,
``theta*`` the weights after the last experience.

The importances grow with the logits, so with SGD they are capped at ``1 / (2 lr lambda)``:
beyond it one gradient step on the penalty overshoots the anchor, and past twice that it
diverges (on split-Fashion-MNIST with a Conv-4 at lr 0.01 the largest importance reached 330
after four experiences and every weight blew up in the fifth, leaving one class predicted). A
capped parameter is pulled back to its anchor in one step: as firmly as SGD can hold it.
"""

from __future__ import annotations

from typing import Any

import torch

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy, anchor, quadratic_penalty, shuffled_batches
from fewshot.continual.model import ContinualModel


@STRATEGIES.register("mas")
class MAS(Strategy):
    """Args: ``mas_lambda`` (the penalty's weight), ``decay`` (the importance's running decay)."""

    def __init__(self, mas_lambda: float = 1.0, decay: float = 0.5) -> None:
        self.mas_lambda, self.decay = float(mas_lambda), float(decay)
        self.importance: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def penalty(self, model: ContinualModel) -> torch.Tensor | float:
        if not self.importance:
            return 0.0
        return self.mas_lambda * quadratic_penalty(model, self.importance, self.anchor)

    def after_experience(self, model, exp, settings, generator) -> None:
        new = {name: torch.zeros_like(p) for name, p in model.named_parameters() if p.requires_grad}
        seen, batches = torch.as_tensor(model.seen), 0
        for x, _ in shuffled_batches(exp.train, settings.batch_size, generator):
            model.zero_grad(set_to_none=True)
            out = model(x.to(settings.device))[:, seen.to(settings.device)]
            out.pow(2).sum(-1).mean().backward()
            for name, p in model.named_parameters():
                if p.grad is not None and name in new:
                    new[name] += p.grad.detach().abs()
            batches += 1
        model.zero_grad(set_to_none=True)
        new = {k: v / max(1, batches) for k, v in new.items()}
        old = self.importance
        self.importance = {
            k: self.decay * old[k] + (1 - self.decay) * v if k in old and old[k].shape == v.shape else v
            for k, v in new.items()
        }
        if settings.optimizer == "sgd" and self.mas_lambda > 0:  # Adam's steps do not scale with it
            limit = 1.0 / (2 * settings.lr * self.mas_lambda)
            self.importance = {k: v.clamp(max=limit) for k, v in self.importance.items()}
        self.anchor = anchor(model)

    def state_dict(self) -> dict[str, Any]:
        return {"importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict[str, Any], model: ContinualModel) -> None:
        self.importance, self.anchor = state["importance"], state["anchor"]
