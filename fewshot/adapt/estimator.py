"""`DomainAdapter`: adaptation in the shape of the learners (scikit-learn conventions).

``DomainAdapter(encoder, "dann", epochs=5).fit(source_x, source_y, target_x)`` runs
`fewshot.adapt.run.adapt` in memory; learned state ends in ``_`` (``model_`` the kept model,
``source_model_``, ``adapted_model_``, ``result_`` with source-only beside adapted), then
``predict`` / ``predict_proba`` / ``logits`` use ``model_``; ``save(path)`` writes it as a
classifier checkpoint that `fewshot predict` and `fewshot eval` load. Method hyperparameters
go in ``params``; every other keyword is an `AdaptConfig` field.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from fewshot.errors import NotFittedError


class DomainAdapter:
    """Args: encoder: any `Encoder`; method: a name of `fewshot.adapt.ADAPTERS`; params: its
    hyperparameters; class_names: the source classes (default ``"0".."C-1"``); settings:
    `AdaptConfig` fields (``source_epochs``, ``epochs``, ``select``, ``keep``, ``seed``, ...)."""

    def __init__(
        self,
        encoder: Any,
        method: str,
        params: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        **settings: Any,
    ) -> None:
        self.encoder, self.method, self.params = encoder, method, dict(params or {})
        self.class_names, self.settings = class_names, settings

    def fit(
        self, source_x: torch.Tensor, source_y: torch.Tensor, target_x: torch.Tensor, target_y=None
    ) -> DomainAdapter:
        """Source items ``(ns, ...)`` with labels ``(ns,)``, target items ``(nt, ...)``; target
        labels ``(nt,)``, when given, only fill ``result_``'s accuracies."""
        from fewshot.adapt.config import AdaptConfig
        from fewshot.adapt.run import adapt
        from fewshot.data.tensors import LabeledTensors

        self.classes_, y = torch.unique(torch.as_tensor(source_y), return_inverse=True)
        names = self.class_names or [str(int(c)) for c in self.classes_]
        source = LabeledTensors(torch.as_tensor(source_x), y, list(names))
        target: Any = torch.as_tensor(target_x)
        if target_y is not None:
            ty = torch.searchsorted(self.classes_, torch.as_tensor(target_y))
            target = LabeledTensors(target, ty, list(names))
        config = AdaptConfig(method=self.method, params=self.params, **self.settings)
        self.model_, self.result_, models = adapt(self.encoder, source, target, config, progress=False)
        self.source_model_, self.adapted_model_ = models["source-only"], models["adapted"]
        return self

    def _model(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "this DomainAdapter is not fitted yet: call fit(source_x, source_y, target_x)"
            )
        return self.model_

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, ...)`` -> ``(n, C)`` logits of the kept model."""
        model = self._model().eval()
        return model(torch.as_tensor(x).to(next(model.parameters()).device)).cpu()

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(-1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels, values of ``classes_``."""
        best = self.logits(x).argmax(-1)
        return self.classes_[best]

    def save(self, path: str | os.PathLike[str], encoder_name: str = "conv4"):
        """The kept model as a classifier checkpoint (atomic)."""
        from dataclasses import asdict

        from fewshot.checkpoints import save_checkpoint
        from fewshot.transfer.sources import classifier_metadata

        model = self._model()
        report = {k: v for k, v in asdict(self.result_).items() if k not in ("history", "checkpoint")}
        return save_checkpoint(path, model, {**classifier_metadata(encoder_name, model), "adapt": report})


__all__ = ["DomainAdapter"]
