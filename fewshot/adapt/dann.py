"""DANN, domain-adversarial training (Ganin and Lempitsky, ICML 2015; Ganin et al., JMLR 2016).

A domain discriminator learns to tell source features from target features; between it and
the encoder a gradient reversal layer passes the features forward unchanged and multiplies
the gradient by ``-lambda`` on the way back, so the encoder learns features the discriminator
cannot separate. ``lambda`` follows the paper's schedule ``2 / (1 + exp(-gamma p)) - 1``
(``gamma = 10``, ``p`` the progress from 0 to 1), which keeps the noisy early discriminator
from disturbing the features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import NetworkAdapter, Step


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def reverse_gradient(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient times ``-coefficient`` backward."""
    return _Reverse.apply(x, coefficient)


def grl_schedule(progress: float, gamma: float = 10.0) -> float:
    """The paper's ``lambda_p = 2 / (1 + exp(-gamma p)) - 1``: 0 at the start, near 1 at the end."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def discriminator(in_features: int, hidden: int) -> nn.Module:
    """The paper's domain classifier: two hidden ReLU layers, one logit (source = 1)."""
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, 1),
    )


def domain_loss(disc: nn.Module, hs: torch.Tensor, ht: torch.Tensor, ws=None, wt=None) -> torch.Tensor:
    """Binary cross-entropy of the discriminator on source (1) and target (0), optional weights."""
    logits = disc(torch.cat([hs, ht])).squeeze(-1)
    truth = torch.cat([torch.ones(len(hs)), torch.zeros(len(ht))]).to(logits)
    weight = None if ws is None else torch.cat([ws, wt]).to(logits)
    return F.binary_cross_entropy_with_logits(logits, truth, weight=weight)


@ADAPTERS.register("dann")
class DANN(NetworkAdapter):
    """Args: weight: the adversarial loss's weight; hidden: discriminator width; gamma: the
    schedule's steepness."""

    name = "dann"

    def __init__(self, weight: float = 1.0, hidden: int = 256, gamma: float = 10.0) -> None:
        self.weight, self.hidden, self.gamma = weight, hidden, gamma

    def modules(self, feature_dim: int, n_classes: int) -> nn.Module:
        return discriminator(feature_dim, self.hidden)

    def loss(self, step: Step) -> torch.Tensor:
        coefficient = grl_schedule(step.progress, self.gamma)
        hs, ht = reverse_gradient(step.zs, coefficient), reverse_gradient(step.zt, coefficient)
        return self.weight * domain_loss(self.parts, hs, ht)
