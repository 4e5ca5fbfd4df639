"""PT-MAP: power transform + MAP estimation of the class centres by optimal transport (Hu,
Gripon and Pateux, "Leveraging the Feature Distribution in Transfer-based Few-Shot
Learning", ICANN 2021). TRANSDUCTIVE: it uses the episode's unlabelled queries.

1. Power transform (the paper's PT): ``f(v) = (v + 1e-6)^beta / ||(v + 1e-6)^beta||_2`` with
   ``beta = 0.5``, on non-negative features (ReLU outputs; negative values are clipped to 0);
   then, as the authors' code does, the support and the query items of the episode are each
   centred on their own mean and scaled to unit norm again (without this, unit-norm ReLU
   features lie so close together that ``lambda = 10`` gives near-uniform transport plans).
2. MAP (the paper's Algorithm 1): the centres start at the support class means; for
   ``epochs`` rounds, the queries' soft assignments are the Sinkhorn optimal-transport plan
   of ``exp(-lambda * ||f(x_q) - c_n||^2)`` with one unit of mass per query and equal mass
   per class (the balanced-query assumption of the paper), and every centre moves a step
   ``alpha`` towards the mean of its support items and soft-assigned queries.

The logits are the log of the final transport plan (rows sum to one: softmax(logits) is the
plan). The paper's defaults: ``beta = 0.5``, ``lambda = 10``, ``alpha = 0.2``, 20 epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.transductive import TransductiveLearner, squared_distances, weighted_means


def power_transform(features: torch.Tensor, beta: float, normalize: bool = True) -> torch.Tensor:
    """``(v + 1e-6)^beta``, L2-normalised, on ``(..., d)`` features (negative values clipped)."""
    powered = (features.clamp(min=0) + 1e-6).pow(beta)
    return F.normalize(powered, dim=-1) if normalize else powered


def sinkhorn(
    cost: torch.Tensor, lam: float, epsilon: float = 1e-6, max_iterations: int = 1000
) -> torch.Tensor:
    """Transport plan ``(B, M, N)`` for ``cost`` ``(B, M, N)``: rows sum to 1, columns to M/N.

    Each episode stops once its rows are within ``epsilon`` of 1; episodes of a block that
    have converged are left as they are, so a block gives each episode's own plan.
    """
    plan = torch.exp(-lam * (cost - cost.amin((1, 2), keepdim=True)))
    plan = plan / plan.sum((1, 2), keepdim=True)
    column = cost.shape[1] / cost.shape[2]
    active = torch.ones(cost.shape[0], dtype=torch.bool, device=cost.device)
    for _ in range(max_iterations):
        step = plan / plan.sum(2, keepdim=True)
        step = step * (column / step.sum(1, keepdim=True))
        plan = torch.where(active[:, None, None], step, plan)
        active = active & ((plan.sum(2) - 1).abs().amax(1) >= epsilon)
        if not active.any():
            break
    return plan


def centre_episode(items: torch.Tensor) -> torch.Tensor:
    """``(B, n, d)`` items centred on each episode's mean, then scaled to unit norm."""
    return F.normalize(items - items.mean(1, keepdim=True), dim=-1)


@LEARNERS.register("pt-map")
class PTMAP(TransductiveLearner):
    """Power transform + optimal-transport MAP estimation of the class centres (transductive).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` non-negative embeddings.
        beta: the power transform's exponent (0.5).
        lam: ``lambda``, the sharpness of the transport plan (10).
        alpha: the step of each centre towards its new estimate (0.2).
        epochs: rounds of assignment and centre update (20).
        normalize: L2-normalise after the power and centre support and queries (the paper's
            PT and its code); False keeps the powered features as they are (easyfsl's PT-MAP).
    """

    def __init__(
        self,
        encoder: Encoder,
        beta: float = 0.5,
        lam: float = 10.0,
        alpha: float = 0.2,
        epochs: int = 20,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.beta = beta
        self.lam = lam
        self.alpha = alpha
        self.epochs = epochs
        self.normalize = normalize

    def transduce(self, support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        support = power_transform(support, self.beta, self.normalize)
        query = power_transform(query, self.beta, self.normalize)
        if self.normalize:
            support, query = centre_episode(support), centre_episode(query)
        centres = weighted_means(onehot, support)  # (B, N, d)
        features = torch.cat([support, query], 1)
        for _ in range(self.epochs):
            plan = sinkhorn(squared_distances(query, centres), self.lam)
            estimate = weighted_means(torch.cat([onehot, plan], 1), features)
            centres = centres + self.alpha * (estimate - centres)
        plan = sinkhorn(squared_distances(query, centres), self.lam)
        return plan.clamp(min=1e-30).log()
