"""LP++ (Huang et al., "LP++: A Surprisingly Strong Linear Probe for Few-Shot CLIP", CVPR 2024).

A linear probe whose class weights blend visual prototypes with the text embeddings through
class-wise multipliers:

    logits = f @ V.T + b + alpha * (f @ T.T)      (f normalised, T the text prototypes)

``V`` starts at the class means of the support features, ``b`` at 0, every ``alpha_c`` at the
data-driven value of the paper (250 times the mean over classes of the class-mean text
similarities). Step sizes come from the loss's Lipschitz constants, so there is no learning
rate to tune: ``4 n / lambda_max(F^T F)`` for ``V, b`` (SGD with momentum 0.9), and
``n / (4 max_c sum_i (f_i . t_c)^2)`` for ``alpha``, which is updated every 10 steps with the
gradient summed over those steps. Full batch, 300 steps, the last iterate kept (no
validation set).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.learners import LEARNERS
from fewshot.learners.clip_tuned import ClipTuned


def class_means(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(C, d)`` mean feature of each class."""
    one_hot = F.one_hot(labels, n_classes).float()
    return one_hot.T @ features / one_hot.sum(0).clamp(min=1).unsqueeze(1)


def step_sizes(features: torch.Tensor, text_logits: torch.Tensor) -> tuple[float, float]:
    """``(lr_w, lr_alpha)`` from the Lipschitz constants (features ``(n, d)``, text logits ``(n, C)``)."""
    n = features.shape[0]
    largest = float(torch.linalg.eigvalsh((features.T @ features).double()).max())
    lr_w = 4 * n / max(largest, 1e-12)
    lr_alpha = n / (4 * max(float(text_logits.pow(2).sum(0).max()), 1e-12))
    return lr_w, lr_alpha


@LEARNERS.register("lp++")
class LPPlusPlus(ClipTuned):
    """LP++ (see the module docstring).

    Args:
        encoder: a CLIP encoder (``encode``, ``encode_text``).
        templates: prompt templates of the text prototypes.
        steps: full-batch gradient steps; alpha_every: steps between updates of ``alpha``.
        init_factor: ``alpha``'s initial value is this times the mean class-mean text similarity.
        seed: unused by the (deterministic) solver; kept for the common interface.
    """

    compare_rank = 15
    exports_classifier = True

    def __init__(
        self,
        encoder,
        templates: str | Sequence[str] | None = "simple",
        steps: int = 300,
        alpha_every: int = 10,
        init_factor: float = 250.0,
        seed: int = 0,
    ) -> None:
        super().__init__(encoder, templates, None)
        self.steps, self.alpha_every, self.init_factor = int(steps), int(alpha_every), float(init_factor)
        self.seed = int(seed)
        self.head_: nn.Linear | None = None
        self.alpha_: torch.Tensor | None = None

    def _logits(self, features: torch.Tensor, text_logits: torch.Tensor) -> torch.Tensor:
        return self.head_(features) + self.alpha_ * text_logits

    def _init(self, features: torch.Tensor, labels: torch.Tensor, text_logits: torch.Tensor) -> None:
        n_classes = self.prototypes_.shape[0]
        self.head_ = nn.Linear(features.shape[1], n_classes).to(features.device)
        with torch.no_grad():
            self.head_.weight.copy_(class_means(features, labels, n_classes))
            self.head_.bias.zero_()
        start = self.init_factor * class_means(text_logits, labels, n_classes).mean()
        self.alpha_ = nn.Parameter(start * torch.ones(n_classes, device=features.device))

    def _train(self, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
        self.prototypes_ = self.text_prototypes().to(features.device)
        text_logits = features @ self.prototypes_.T  # (n, C)
        self._init(features, labels, text_logits)
        lr_w, lr_alpha = step_sizes(features, text_logits)
        optimiser = torch.optim.SGD(self.head_.parameters(), lr=lr_w, momentum=0.9)
        losses = []
        with torch.enable_grad():
            for step in range(self.steps):
                loss = F.cross_entropy(self._logits(features, text_logits), labels)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                if (step + 1) % self.alpha_every == 0:
                    with torch.no_grad():
                        self.alpha_ -= lr_alpha * self.alpha_.grad
                    self.alpha_.grad = None
                losses.append(float(loss.detach()))
        self.alpha_.grad = None
        return losses

    @torch.no_grad()
    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of image embeddings ``(M, d)``."""
        self._check_fitted("head_")
        features = self._features(query_z)
        return self._logits(features, features @ self.prototypes_.T)

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted model as a linear head on L2-normalised features: ``(weight (C, d), bias (C,))``."""
        self._check_fitted("head_")
        weight = self.head_.weight.detach() + self.alpha_.detach().unsqueeze(1) * self.prototypes_
        return weight, self.head_.bias.detach().clone()
