"""`ClipTuned`: the frame of the CLIP learners fitted on the support set's image embeddings.

CoOp, CoCoOp, CLIP-Adapter, ZS-LP/CLAP and LP++ keep CLIP's image tower frozen: they are of
kind ``EMBEDDING`` (evaluation embeds every item once), read the episode's class names
(``uses_class_names``), and train a few parameters of their own on the support embeddings,
from ``seed``, with no validation set and never on queries. A subclass implements
``_train(features, labels)`` on L2-normalised support features ``(n, d)`` and
``logits_embeddings``; ``losses_`` records the training loss of every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.learners.clip_fitting import frozen, seeded
from fewshot.learners.zeroshot import ZeroShot


class ClipTuned(ZeroShot):
    """Base of the support-trained CLIP learners (see the module docstring)."""

    kind = EMBEDDING
    uses_class_names = True
    compare_rank = 20
    seed: int = 0

    # a support set is required (ZeroShot's fit without one is zero-shot only)
    fit = FewShotLearner.fit

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor):
        with torch.no_grad():
            return self._fit_embeddings(self.encoder(support_x), support_y)

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor):
        """Train on support embeddings ``(n, d)`` with labels ``0..C-1`` (seeded; queries unseen)."""
        self._check_classes(int(support_y.max()) + 1)
        features = F.normalize(support_z.detach().float(), dim=-1)
        with seeded(self.seed, features.device), frozen(self.encoder):
            self.losses_ = self._train(features, support_y.to(features.device))
        return self

    def _train(self, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
        raise NotImplementedError

    @staticmethod
    def _features(query_z: torch.Tensor) -> torch.Tensor:
        return F.normalize(query_z.float(), dim=-1)
