"""CLIP-Adapter (Gao et al., "CLIP-Adapter: Better Vision-Language Models with Feature Adapters", IJCV 2023).

A bottleneck MLP (Linear d -> d/4, ReLU, Linear d/4 -> d, ReLU, no biases) on the frozen
image features, blended back with a residual ratio, and classified by the zero-shot text
prototypes:

    f' = ratio * A(f) + (1 - ratio) * f,    logits = s * normalize(f') @ T.T

``text_adapter=True`` adds a second adapter of the same form on the text prototypes ``T``
(the paper's text-side variant). Trained on the support set with fixed settings (no
validation set): AdamW lr 1e-3, batch 32, 200 epochs; ``ratio = 0.2`` as the paper's best
on ImageNet. Each query is scored on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.learners import LEARNERS
from fewshot.learners.classifier import Classifier
from fewshot.learners.clip_fitting import iterations_for, make_optimiser, train_steps
from fewshot.learners.clip_tuned import ClipTuned
from fewshot.learners.feature_adapter import bottleneck


@LEARNERS.register("clip-adapter")
class ClipAdapter(ClipTuned):
    """Residual feature adapter(s) over frozen CLIP (see the module docstring).

    Args:
        encoder: a CLIP encoder (``encode``, ``encode_text``, ``logit_scale``).
        templates: prompt templates of the text prototypes.
        ratio: residual ratio of the image adapter; text_ratio: of the text adapter.
        text_adapter: also adapt the text prototypes.
        reduction: bottleneck reduction (d -> d / reduction).
        epochs, lr, batch_size: AdamW training on the support set.
        seed: adapter initialisation and batch order. scale: logit scale (None: the encoder's).
    """

    compare_rank = 12
    exports_classifier = True  # as a `Classifier` with the adapter (`export_model`)

    def __init__(
        self,
        encoder,
        templates: str | Sequence[str] | None = "simple",
        ratio: float = 0.2,
        text_adapter: bool = False,
        text_ratio: float = 0.2,
        reduction: int = 4,
        epochs: int = 200,
        lr: float = 1e-3,
        batch_size: int = 32,
        seed: int = 0,
        scale: float | None = None,
    ) -> None:
        super().__init__(encoder, templates, scale)
        self.ratio, self.text_adapter, self.text_ratio = float(ratio), bool(text_adapter), float(text_ratio)
        self.reduction, self.epochs, self.lr = int(reduction), int(epochs), float(lr)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.image_adapter_: nn.Module | None = None
        self.text_adapter_: nn.Module | None = None

    def adapted_text(self) -> torch.Tensor:
        """Text prototypes ``(C, d)``, through the text adapter when there is one (unit norm)."""
        text = self.prototypes_
        if self.text_adapter_ is not None:
            text = self.text_ratio * self.text_adapter_(text) + (1 - self.text_ratio) * text
        return F.normalize(text, dim=-1)

    def _logits(self, features: torch.Tensor) -> torch.Tensor:
        adapted = self.ratio * self.image_adapter_(features) + (1 - self.ratio) * features
        return self.logit_scale * F.normalize(adapted, dim=-1) @ self.adapted_text().T

    def _train(self, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
        self.prototypes_ = self.text_prototypes().to(features.device)
        dim = features.shape[1]
        self.image_adapter_ = bottleneck(dim, self.reduction).to(features.device)
        self.text_adapter_ = (
            bottleneck(dim, self.reduction).to(features.device) if self.text_adapter else None
        )
        params = list(self.image_adapter_.parameters())
        if self.text_adapter_ is not None:
            params += list(self.text_adapter_.parameters())
        optimiser = make_optimiser(params, "adamw", self.lr, weight_decay=1e-4)

        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self._logits(features[index]), labels[index])

        iterations = iterations_for(labels.numel(), self.batch_size, self.epochs)
        return train_steps(
            params, batch_loss, labels.numel(), iterations, self.batch_size, optimiser, self.seed
        )

    @torch.no_grad()
    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of image embeddings ``(M, d)``."""
        self._check_fitted("image_adapter_")
        return self._logits(self._features(query_z))

    def export_model(self, encoder, class_names):
        """The fitted model as a fixed-class `Classifier` over ``encoder``: the image adapter
        between its normalisations and the (adapted) text prototypes as its head."""
        self._check_fitted("image_adapter_")
        model = Classifier(
            encoder, class_names, normalize=True, adapter_reduction=self.reduction, adapter_ratio=self.ratio
        )
        with torch.no_grad():
            model.adapter.load_state_dict(self.image_adapter_.state_dict())
            model.head.weight.copy_(self.logit_scale * self.adapted_text())
            model.head.bias.zero_()
        return model
