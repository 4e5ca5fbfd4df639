"""SimpleShot (Wang et al., 2019): nearest class mean on centred, L2-normalised features.

Centring ("CL2N") subtracts a mean feature before normalising. Where that mean comes from
is the ``centering`` hyperparameter:

- ``"support"`` (default): the mean of the episode's support embeddings. Only support items
  are used, so predictions never depend on the query set.
- ``"base"``: a fixed mean of a base (training) set, given as ``base_mean`` (as in the paper,
  which centres with the mean of the meta-training features).
- ``"none"``: L2-normalisation only ("L2N").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.scoring import class_means, prototype_logits

CENTERINGS = ("support", "base", "none")


@LEARNERS.register("simpleshot")
class SimpleShot(FewShotLearner):
    """Nearest class mean on centred, L2-normalised embeddings.

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        centering: ``"support"``, ``"base"`` or ``"none"`` (see the module docstring).
        base_mean: ``d`` floats, required with ``centering="base"``.
        scale: multiplies the logits (negative squared distances between unit vectors).
    """

    compare_rank = 1

    kind = EMBEDDING

    def __init__(
        self,
        encoder: Encoder,
        centering: str = "support",
        base_mean: Sequence[float] | None = None,
        scale: float = 10.0,
    ) -> None:
        super().__init__()
        if centering not in CENTERINGS:
            raise FewshotError(f"unknown centering {centering!r}: choose one of {', '.join(CENTERINGS)}")
        if centering == "base" and base_mean is None:
            raise FewshotError("centering='base' needs base_mean (the mean embedding of a base set)")
        self.encoder = encoder
        self.centering = centering
        self.base_mean = None if base_mean is None else [float(v) for v in base_mean]
        self.scale = scale
        self.center_: torch.Tensor | None = None
        self.prototypes_: torch.Tensor | None = None

    def transform(self, z: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """Centre and L2-normalise embeddings ``(..., d)`` with ``center`` ``(..., 1, d)`` or ``(d,)``."""
        return F.normalize(z.float() - center, dim=-1)

    def _center(self, support_z: torch.Tensor) -> torch.Tensor:
        """The centring vector: ``(..., n, d)`` support -> ``(..., 1, d)``."""
        if self.centering == "support":
            return support_z.float().mean(-2, keepdim=True)
        if self.centering == "base":
            mean = torch.tensor(self.base_mean, dtype=torch.float32, device=support_z.device)
            return mean.expand(*support_z.shape[:-2], 1, -1)
        return torch.zeros(*support_z.shape[:-2], 1, support_z.shape[-1], device=support_z.device)

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> SimpleShot:
        """Fit on already-embedded support items ``(N*K, d)`` with labels ``(N*K,)``."""
        self.center_ = self._center(support_z)[0]
        features = self.transform(support_z, self.center_)
        self.prototypes_ = class_means(features, support_y, int(support_y.max()) + 1)
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("prototypes_")
        return prototype_logits(
            self.transform(query_z, self.center_), self.prototypes_, "euclidean", self.scale
        )

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``."""
        b, n, k, d = support_z.shape
        center = self._center(support_z.reshape(b, n * k, d))  # (B, 1, d)
        prototypes = self.transform(support_z, center.unsqueeze(1)).mean(2)  # (B, N, d)
        return prototype_logits(self.transform(query_z, center), prototypes, "euclidean", self.scale)
