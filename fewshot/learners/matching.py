"""Matching Networks (Vinyals et al., 2016), without full-context embeddings.

A query ``x`` is classified by attention over the support set:
``P(y = c | x) = sum_i a(x, x_i) [y_i = c]`` with ``a(x, x_i) = softmax_i(scale * cos(f(x), f(x_i)))``,
one encoder ``f`` for support and query items (the paper's ``f = g`` without the LSTMs of its
full-context embeddings). Logits are ``log P``, computed in log space (a ``logsumexp`` over each
class's support items minus one over all of them), so ``softmax(logits) = P`` and training
minimises the negative log-likelihood of the query labels, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.sampling import Episode


def matching_log_probs(
    query: torch.Tensor, support: torch.Tensor, labels: torch.Tensor, n_classes: int, scale: float
) -> torch.Tensor:
    """``log P(y = c | query)``: queries ``(M, d)``, support ``(n, d)``, labels ``(n,)`` in ``0..C-1``
    -> ``(M, C)``. Every class must have a support item."""
    scores = scale * F.normalize(query.float(), dim=-1) @ F.normalize(support.float(), dim=-1).T  # (M, n)
    in_class = F.one_hot(labels, n_classes).T.bool()  # (C, n)
    per_class = scores.unsqueeze(1).masked_fill(~in_class, float("-inf")).logsumexp(-1)  # (M, C)
    return per_class - scores.logsumexp(-1, keepdim=True)


@LEARNERS.register("matching")
class MatchingNet(FewShotLearner):
    """Matching network over any `Encoder` (cosine attention, no full-context embeddings).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        scale: multiplies the cosine similarities before the softmax (the paper: 1).

    Shapes: ``fit(support_x (n, ...), support_y (n,))``; ``logits(query_x (M, ...))`` -> ``(M, C)``
    log-probabilities.
    """

    kind = EMBEDDING
    meta_trainable = True
    default_train_ways = 5  # the paper trains on tasks of the test's N (5- or 20-way)

    def __init__(self, encoder: Encoder, scale: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.scale = scale
        self.support_: torch.Tensor | None = None
        self.labels_: torch.Tensor | None = None
        self.n_classes_: int | None = None

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> MatchingNet:
        """Keep the support embeddings ``(n, d)`` and labels ``(n,)`` the queries attend to."""
        self.support_, self.labels_ = support_z.detach(), support_y
        self.n_classes_ = int(support_y.max()) + 1
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """``log P`` ``(M, C)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("support_")
        return matching_log_probs(query_z, self.support_, self.labels_, self.n_classes_, self.scale)

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``."""
        b, n, k, d = support_z.shape
        support = F.normalize(support_z.float(), dim=-1).reshape(b, n * k, d)
        scores = self.scale * F.normalize(query_z.float(), dim=-1) @ support.transpose(1, 2)  # (B, M, N*K)
        per_class = scores.reshape(b, -1, n, k).logsumexp(-1)
        return per_class - scores.logsumexp(-1, keepdim=True)

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        n_support = episode.support_x.shape[0]
        # forward, not encode: training batches come from the sampler and need no input check per step
        embeddings = self.encoder(torch.cat([episode.support_x, episode.query_x]))
        log_probs = matching_log_probs(
            embeddings[n_support:], embeddings[:n_support], episode.support_y, episode.ways, self.scale
        )
        loss = F.nll_loss(log_probs, episode.query_y)
        accuracy = (log_probs.argmax(-1) == episode.query_y).float().mean()
        return loss, accuracy
