"""The learner contract shared by every few-shot method.

Modelled on scikit-learn: the constructor only stores hyperparameters (and the encoder);
``fit(support_x, support_y)`` learns from one task's support set and returns ``self``;
state learned by ``fit`` ends in ``_``; ``predict``/``predict_proba`` before ``fit`` raise
`NotFittedError`. Learners that can be meta-trained also define
``episode_loss(episode) -> (loss, accuracy)`` for the shared training loop.
"""

from __future__ import annotations

import torch
from torch import nn

from fewshot.errors import NotFittedError
from fewshot.sampling import Episode


class FewShotLearner(nn.Module):
    """Base class: subclasses implement `fit` and `logits`.

    ``support_x`` ``(N*K, ...)``, ``support_y`` ``(N*K,)`` in ``0..N-1``;
    ``query_x`` ``(M, ...)`` -> logits ``(M, N)``.
    """

    #: True when evaluation may embed every test item once and reuse the embeddings
    #: (the learner never changes the encoder while fitting).
    frozen_encoder: bool = True

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> FewShotLearner:
        raise NotImplementedError

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, name, None) is None for name in attributes):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit(support_x, support_y) first"
            )

    @torch.no_grad()
    def predict_proba(self, query_x: torch.Tensor) -> torch.Tensor:
        """``(M, ...)`` -> ``(M, N)`` class probabilities."""
        return self.logits(query_x).float().softmax(-1)

    @torch.no_grad()
    def predict(self, query_x: torch.Tensor) -> torch.Tensor:
        """``(M, ...)`` -> ``(M,)`` predicted episode labels in ``0..N-1``."""
        return self.logits(query_x).argmax(-1)

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Meta-training loss on one episode: ``(loss, accuracy)`` scalars."""
        raise NotImplementedError(f"{type(self).__name__} cannot be meta-trained")

    def config(self) -> dict:
        """JSON-able hyperparameters, stored in checkpoints."""
        return {}
