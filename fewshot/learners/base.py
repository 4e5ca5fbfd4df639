"""The learner contract shared by every few-shot method.

Modelled on scikit-learn: the constructor only stores hyperparameters (and the encoder);
``fit(support_x, support_y)`` learns from one task's support set and returns ``self``;
state learned by ``fit`` ends in ``_``; ``predict``/``predict_proba`` before ``fit`` raise
`NotFittedError`. Learners that can be meta-trained also define
``episode_loss(episode) -> (loss, accuracy)`` for the shared training loop.

Labels: ``fit`` accepts any integer labels (``[0, 0, 7, 7, 9]``); ``classes_`` holds the
sorted distinct labels, ``predict`` returns values of ``classes_`` and ``predict_proba``
has ``len(classes_)`` columns in that order. Subclasses never see the original labels:
they implement ``_fit(x, y)`` or ``_fit_embeddings(z, y)`` with ``y`` in ``0..C-1``
(``fit`` maps the labels once; episodes from the sampler are already ``0..N-1``, which
evaluation passes straight to ``_fit_embeddings``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fewshot.errors import FewshotError, NotFittedError
from fewshot.inputs import check_batch, check_labels, model_dtype
from fewshot.sampling import Episode


def caches_embeddings(learner: Any) -> bool:
    """True when evaluation may embed every item once: a frozen encoder and `_fit_embeddings`."""
    return bool(getattr(learner, "frozen_encoder", False)) and hasattr(learner, "_fit_embeddings")


class FewShotLearner(nn.Module):
    """Base class: subclasses implement ``_fit`` (or ``_fit_embeddings``) and ``logits``.

    ``support_x`` ``(n, ...)``, ``support_y`` ``(n,)`` any integer labels;
    ``query_x`` ``(M, ...)`` -> logits ``(M, len(classes_))``.
    """

    #: True when evaluation may embed every test item once and reuse the embeddings
    #: (the learner never changes the encoder while fitting).
    frozen_encoder: bool = True
    #: How this learner is fitted, for the not-fitted message.
    fit_signature: str = "fit(support_x, support_y)"
    #: The sorted distinct labels seen by the last ``fit`` (None: outputs are ``0..C-1``).
    classes_: torch.Tensor | None = None

    def _check_batch(self, x: Any, what: str) -> torch.Tensor:
        encoder = getattr(self, "encoder", None)
        return check_batch(x, what, getattr(encoder, "input_size", None), model_dtype(self))

    def _learn_classes(self, support_y: Any, n_items: int) -> torch.Tensor:
        """Set ``classes_`` from the labels; return the labels as ``0..C-1`` indices."""
        labels = check_labels(support_y, n_items)
        classes, encoded = torch.unique(labels, sorted=True, return_inverse=True)
        if classes.numel() < 2:
            raise FewshotError(
                f"support_y has a single class ({int(classes[0])}): a few-shot task needs at least 2 classes"
            )
        self.classes_ = classes
        return encoded

    def fit(self, support_x: Any, support_y: Any) -> FewShotLearner:
        """Learn one task from ``support_x`` ``(n, ...)`` and integer labels ``support_y`` ``(n,)``."""
        x = self._check_batch(support_x, "support_x")
        y = self._learn_classes(support_y, x.shape[0]).to(x.device)
        return self._fit(x, y)

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> FewShotLearner:
        """``fit`` on checked inputs with labels ``0..C-1`` (default: embed, then `_fit_embeddings`)."""
        if not hasattr(self, "_fit_embeddings"):
            raise NotImplementedError(f"{type(self).__name__} implements neither _fit nor _fit_embeddings")
        with torch.no_grad():
            return self._fit_embeddings(self.encoder(support_x), support_y)

    def fit_embeddings(self, support_z: Any, support_y: Any) -> FewShotLearner:
        """Fit on already-embedded support items ``(n, d)`` with integer labels ``(n,)``."""
        if not hasattr(self, "_fit_embeddings"):
            raise FewshotError(f"{type(self).__name__} fits on inputs, not embeddings: call fit")
        z = check_batch(support_z, "support_z", None, model_dtype(self))
        return self._fit_embeddings(z, self._learn_classes(support_y, z.shape[0]).to(z.device))

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, name, None) is None for name in attributes):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call {self.fit_signature} first")

    def _classes_of(self, indices: torch.Tensor) -> torch.Tensor:
        if self.classes_ is None:
            return indices
        return self.classes_.to(indices.device)[indices]

    @torch.no_grad()
    def predict_proba(self, query_x: Any) -> torch.Tensor:
        """``(M, ...)`` -> ``(M, len(classes_))`` class probabilities, columns in ``classes_`` order."""
        return self.logits(self._check_batch(query_x, "query_x")).float().softmax(-1)

    @torch.no_grad()
    def predict(self, query_x: Any) -> torch.Tensor:
        """``(M, ...)`` -> ``(M,)`` predicted labels (values of ``classes_``)."""
        logits = self.logits(self._check_batch(query_x, "query_x"))
        return self._classes_of(logits.argmax(-1))

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Meta-training loss on one episode: ``(loss, accuracy)`` scalars."""
        raise NotImplementedError(f"{type(self).__name__} cannot be meta-trained")

    def config(self) -> dict:
        """JSON-able hyperparameters, stored in checkpoints."""
        return {}
