"""The shared frame of the transductive learners on frozen embeddings (BD-CSPN, TIM, PT-MAP,
LaplacianShot, transductive fine-tuning).

A transductive learner scores an episode's queries jointly: ``fit`` keeps the support set,
and ``logits_embeddings`` receives all of the episode's queries at once and uses them,
unlabelled, to adapt its classifier before scoring them. Each method implements one function
on a block of episodes, `TransductiveLearner.transduce`; the single-episode path calls it
with a block of one, the batched path (many episodes per call) with a block of many, so both
compute the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.learners.base import EMBEDDING, FewShotLearner


class TransductiveLearner(FewShotLearner):
    """Base class: subclasses implement `transduce` and store their hyperparameters.

    Shapes: ``fit(support (n, d), labels (n,))``; ``logits_embeddings(query (M, d))`` ->
    ``(M, C)``; ``batch_logits_embeddings(support (B, N, K, d), query (B, M, d))`` -> ``(B, M, N)``.
    """

    kind = EMBEDDING
    transductive = True
    compare_rank = 50  # after the inductive methods in `fewshot compare`

    support_: torch.Tensor | None = None
    onehot_: torch.Tensor | None = None

    def transduce(self, support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Logits of a block of episodes: support ``(B, S, d)`` with one-hot labels ``(B, S, N)``
        and queries ``(B, M, d)`` (float32) -> ``(B, M, N)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement transduce")

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> TransductiveLearner:
        """Keep the support embeddings ``(n, d)`` and their labels ``(n,)``: the work happens
        when the queries arrive."""
        self.support_ = support_z.detach().float()
        self.onehot_ = F.one_hot(support_y, int(support_y.max()) + 1).float()
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of ALL of the episode's embedded queries ``(M, d)``, scored jointly."""
        self._check_fitted("support_")
        query = query_z.detach().float().to(self.support_.device)
        return self.transduce(self.support_[None], self.onehot_[None], query[None])[0]

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``."""
        b, n, k, d = support_z.shape
        labels = torch.arange(n, device=support_z.device).repeat_interleave(k)
        onehot = F.one_hot(labels, n).float().expand(b, -1, -1)
        return self.transduce(
            support_z.detach().float().reshape(b, n * k, d), onehot, query_z.detach().float()
        )


def weighted_means(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Class centres: weights ``(B, n, N)`` (one-hot or soft), features ``(B, n, d)`` -> ``(B, N, d)``."""
    return weights.transpose(1, 2) @ features / weights.sum(1).clamp(min=1e-12).unsqueeze(-1)


def squared_distances(
    x: torch.Tensor, centres: torch.Tensor, x_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """``||x - c||^2``: ``(B, M, d)``, ``(B, N, d)`` -> ``(B, M, N)``. ``x_norms``
    ``(B, M, 1)``: ``||x||^2`` computed once by a caller that calls this in a loop with fixed ``x``."""
    cross = x @ centres.transpose(1, 2)
    x_norms = x.pow(2).sum(-1, keepdim=True) if x_norms is None else x_norms
    return (x_norms - 2 * cross + centres.pow(2).sum(-1).unsqueeze(1)).clamp(min=0)


def cosine(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``(B, M, d)``, ``(B, N, d)`` -> ``(B, M, N)``."""
    return F.normalize(x, dim=-1) @ F.normalize(centres, dim=-1).transpose(1, 2)


def entropy(probabilities: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy (nats) along ``dim``."""
    return -(probabilities * torch.log(probabilities + 1e-12)).sum(dim)


def adam_steps(parameters: list[torch.Tensor], loss_of, steps: int, lr: float) -> None:
    """``steps`` full-batch Adam steps on ``loss_of()``. A block's loss is the SUM of its
    episodes' losses: Adam's update is elementwise, so each episode follows its own path."""
    with torch.enable_grad():
        optimizer = torch.optim.Adam(parameters, lr=lr)
        for _ in range(steps):
            loss = loss_of()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
