"""CDAN and CDAN+E, conditional adversarial adaptation (Long et al., NeurIPS 2018).

Like DANN, but the discriminator sees the features *conditioned on the predictions*: the
multilinear map ``f (x) g`` (the outer product of features ``(B, d)`` and class
probabilities ``(B, C)``, flattened), or, when ``d * C`` exceeds ``max_dim``, its randomised
form ``(f R_f) * (g R_g) / sqrt(k)`` with fixed random matrices. The gradient reversal and its
schedule are DANN's. CDAN+E weights each item by ``1 + exp(-H(g))`` (normalised per domain),
so confident predictions steer the alignment and uncertain ones less.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import NetworkAdapter, Step
from fewshot.adapt.dann import discriminator, domain_loss, grl_schedule, reverse_gradient


class ConditionalDomain(nn.Module):
    """The discriminator over the (randomised) multilinear map of features and predictions."""

    def __init__(self, feature_dim: int, n_classes: int, hidden: int, max_dim: int, random_dim: int):
        super().__init__()
        self.randomized = feature_dim * n_classes > max_dim
        if self.randomized:
            self.register_buffer("rf", torch.randn(feature_dim, random_dim))
            self.register_buffer("rg", torch.randn(n_classes, random_dim))
        width = random_dim if self.randomized else feature_dim * n_classes
        self.disc = discriminator(width, hidden)

    def multilinear(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``(B, d)``, ``(B, C)`` -> ``(B, d*C)`` or ``(B, random_dim)``."""
        if self.randomized:
            return (f @ self.rf) * (g @ self.rg) / math.sqrt(self.rf.shape[1])
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


def entropy_weights(p: torch.Tensor) -> torch.Tensor:
    """``1 + exp(-H(p))`` per item, scaled to sum to the batch size: ``(B,)``."""
    h = -(p * p.clamp_min(1e-12).log()).sum(-1)
    w = 1.0 + torch.exp(-h)
    return w / w.sum() * len(w)


@ADAPTERS.register("cdan")
class CDAN(NetworkAdapter):
    """Args: weight: adversarial loss weight; entropy: CDAN+E's entropy conditioning; hidden:
    discriminator width; max_dim / random_dim: when to switch to the randomised map, its size."""

    name = "cdan"

    def __init__(
        self,
        weight: float = 1.0,
        entropy: bool = False,
        hidden: int = 256,
        max_dim: int = 4096,
        random_dim: int = 1024,
        gamma: float = 10.0,
    ) -> None:
        self.weight, self.entropy, self.hidden = weight, entropy, hidden
        self.max_dim, self.random_dim, self.gamma = max_dim, random_dim, gamma

    def modules(self, feature_dim: int, n_classes: int) -> nn.Module:
        return ConditionalDomain(feature_dim, n_classes, self.hidden, self.max_dim, self.random_dim)

    def loss(self, step: Step) -> torch.Tensor:
        ps, pt = torch.softmax(step.ls, -1).detach(), torch.softmax(step.lt, -1).detach()
        coefficient = grl_schedule(step.progress, self.gamma)
        hs = reverse_gradient(self.parts.multilinear(step.zs, ps), coefficient)
        ht = reverse_gradient(self.parts.multilinear(step.zt, pt), coefficient)
        ws, wt = (entropy_weights(ps), entropy_weights(pt)) if self.entropy else (None, None)
        return self.weight * domain_loss(self.parts.disc, hs, ht, ws, wt)


@ADAPTERS.register("cdan-e")
class CDANE(CDAN):
    """CDAN+E: CDAN with entropy conditioning on."""

    name = "cdan-e"

    def __init__(
        self,
        weight: float = 1.0,
        entropy: bool = True,
        hidden: int = 256,
        max_dim: int = 4096,
        random_dim: int = 1024,
        gamma: float = 10.0,
    ) -> None:
        super().__init__(weight, entropy, hidden, max_dim, random_dim, gamma)
