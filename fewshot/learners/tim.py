"""TIM-GD: transductive information maximisation, the gradient-descent version (Boudiaf et al.,
"Transductive Information Maximization for Few-Shot Learning",
NeurIPS 2020). TRANSDUCTIVE: it uses the episode's unlabelled queries.

A softmax classifier with one weight vector ``w_n`` per class, on L2-normalised embeddings,
``p(n | x) = softmax_n(-tau / 2 * ||x - w_n||^2)``, starts at the support class means and is
trained by Adam on

    lambda * CE(support) - (H(Y_Q) - alpha * H(Y_Q | X_Q))

where ``H(Y_Q)`` is the entropy of the mean query prediction (it keeps the classes balanced)
and ``H(Y_Q | X_Q)`` the mean entropy of each query's prediction (it makes them confident).
The paper's defaults: ``lambda = 0.1``, ``alpha = 0.1`` (the marginal entropy's weight is 1),
``tau = 15``, 1000 iterations, learning rate 1e-4.

``metric="cosine"`` is easyfsl's formulation instead: ``logits = tau * cos(x, w_n)`` with ``w``
starting at the means of the embeddings as given (not L2-normalised first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.transductive import (
    TransductiveLearner,
    adam_steps,
    entropy,
    squared_distances,
    weighted_means,
)
from fewshot.scoring import Metric


@LEARNERS.register("tim")
class TIM(TransductiveLearner):
    """Transductive information maximisation, TIM-GD (transductive).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        steps: Adam iterations per episode (the paper: 1000).
        lr: Adam's learning rate (1e-4).
        ce_weight: ``lambda``, the support cross-entropy's weight (0.1).
        marginal_weight: the marginal query entropy's weight (1).
        conditional_weight: ``alpha``, the conditional query entropy's weight (0.1).
        temperature: ``tau``, multiplies the logits (15).
        metric: ``"euclidean"`` (the paper's ``-||x - w||^2 / 2`` on normalised embeddings) or
            ``"cosine"`` (easyfsl's ``cos(x, w)``).
    """

    def __init__(
        self,
        encoder: Encoder,
        steps: int = 1000,
        lr: float = 1e-4,
        ce_weight: float = 0.1,
        marginal_weight: float = 1.0,
        conditional_weight: float = 0.1,
        temperature: float = 15.0,
        metric: Metric = "euclidean",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.steps = steps
        self.lr = lr
        self.ce_weight = ce_weight
        self.marginal_weight = marginal_weight
        self.conditional_weight = conditional_weight
        self.temperature = temperature
        self.metric = metric

    def _logits(
        self, x: torch.Tensor, weights: torch.Tensor, x_norms: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.metric == "cosine":  # x is normalised by the caller, once
            return self.temperature * x @ F.normalize(weights, dim=-1).transpose(1, 2)
        if self.metric == "euclidean":
            return -self.temperature / 2 * squared_distances(x, weights, x_norms)
        raise FewshotError(f"unknown TIM metric {self.metric!r}: use 'euclidean' or 'cosine'")

    def transduce(self, support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if self.metric == "euclidean":  # the paper's: the means of the normalised embeddings
            support, query = F.normalize(support, dim=-1), F.normalize(query, dim=-1)
        weights = weighted_means(onehot, support).clone().requires_grad_(True)  # (B, N, d)
        if self.metric == "cosine":  # easyfsl's: the means as given, cosines to normalised ones
            support, query = F.normalize(support, dim=-1), F.normalize(query, dim=-1)
        # the embeddings are fixed: their squared norms once, not at every step (a fifth of the time)
        support_norms = support.pow(2).sum(-1, keepdim=True)
        query_norms = query.pow(2).sum(-1, keepdim=True)

        def loss() -> torch.Tensor:  # the sum over the block of each episode's loss
            support_logits = self._logits(support, weights, support_norms)
            cross_entropy = -(onehot * support_logits.log_softmax(-1)).sum(-1).mean(1)
            probabilities = self._logits(query, weights, query_norms).softmax(-1)  # (B, M, N)
            marginal = entropy(probabilities.mean(1))
            conditional = entropy(probabilities).mean(1)
            total = self.ce_weight * cross_entropy - (
                self.marginal_weight * marginal - self.conditional_weight * conditional
            )
            return total.sum()

        adam_steps([weights], loss, self.steps, self.lr)
        return self._logits(query, weights.detach(), query_norms)
