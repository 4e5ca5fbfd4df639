"""BD-CSPN: prototype rectification (Liu, Song and Qin, "Prototype Rectification for Few-Shot
Learning", ECCV 2020). TRANSDUCTIVE: it uses the episode's unlabelled queries.

Two biases of the support-mean prototypes are diminished:

- cross-class bias: the queries are shifted by ``xi = mean(support) - mean(query)`` (the
  paper's feature shifting), so both sets share a centre;
- intra-class bias: the shifted queries are pseudo-labelled by cosine similarity to the
  support prototypes ``P``, the ``top_z`` most confident of each class join the support set,
  and every class's prototype becomes the weighted mean of its (pseudo-)members,
  ``P'_n = sum_i w_in X_i`` with ``w_in = exp(eps cos(X_i, P_n)) / sum_j exp(eps cos(X_j, P_n))``.

Queries are then scored by ``eps * cos(query + xi, P'_n)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.transductive import TransductiveLearner, cosine, weighted_means


def rectified_prototypes(
    support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor, epsilon: float, top_z: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prototypes (B, N, d), shifted queries (B, M, d))`` from support ``(B, S, d)``, one-hot
    labels ``(B, S, N)`` and queries ``(B, M, d)``."""
    shifted = query + (support.mean(1, keepdim=True) - query.mean(1, keepdim=True))
    basic = weighted_means(onehot, support)
    similarity = cosine(shifted, basic)  # (B, M, N)
    best, guess = similarity.max(-1)  # each query's pseudo-label and its confidence
    pseudo = F.one_hot(guess, onehot.shape[-1]).float()  # (B, M, N)
    if top_z is not None and top_z < query.shape[1]:
        confidence = torch.where(pseudo.bool(), best.unsqueeze(-1), torch.full_like(pseudo, -2.0))
        rank = confidence.argsort(1, descending=True).argsort(1)  # rank of each query within its class
        pseudo = pseudo * (rank < top_z).float()
    members = torch.cat([onehot, pseudo], 1)  # (B, S+M, N)
    features = torch.cat([support, shifted], 1)
    weights = torch.exp(epsilon * cosine(features, basic)) * members
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)
    return weights.transpose(1, 2) @ features, shifted


@LEARNERS.register("bd-cspn")
class BDCSPN(TransductiveLearner):
    """Prototype rectification with pseudo-labelled queries and feature shifting (transductive).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        epsilon: the paper's softmax sharpness ``eps`` of the rectification weights (10); it
            also scales the final cosine logits.
        top_z: pseudo-labelled queries kept per class, the most confident first (the paper's
            ``Z``); None keeps every query with its pseudo-label.
    """

    def __init__(self, encoder: Encoder, epsilon: float = 10.0, top_z: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.epsilon = epsilon
        self.top_z = top_z

    def transduce(self, support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        prototypes, shifted = rectified_prototypes(support, onehot, query, self.epsilon, self.top_z)
        return self.epsilon * cosine(shifted, prototypes)
