"""Prototypical Networks (Snell et al., 2017).

Prototypes are the class means of the support embeddings; queries are scored by negative
squared Euclidean distance (default) or scaled cosine similarity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.sampling import Episode
from fewshot.scoring import Metric, class_means, prototype_logits


@LEARNERS.register("protonet")
class ProtoNet(FewShotLearner):
    """Prototypical network over any `Encoder`.

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        metric: ``"euclidean"`` (squared, as in the paper) or ``"cosine"``.
        scale: multiplies the logits (a temperature; 10 is a good value for cosine).
    """

    compare_rank = 0

    kind = EMBEDDING
    meta_trainable = True

    def __init__(self, encoder: Encoder, metric: Metric = "euclidean", scale: float = 1.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.metric = metric
        self.scale = scale
        self.prototypes_: torch.Tensor | None = None

    @classmethod
    def defaults_for(cls, encoder: Encoder) -> dict:
        scale = getattr(encoder, "logit_scale", None)  # CLIP: its zero-shot head, scaled cosine
        return {} if scale is None else {"metric": "cosine", "scale": scale}

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> ProtoNet:
        """Fit on already-embedded support items ``(N*K, d)``."""
        self.prototypes_ = class_means(support_z, support_y, int(support_y.max()) + 1)
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("prototypes_")
        return prototype_logits(query_z, self.prototypes_, self.metric, self.scale)

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``."""
        return prototype_logits(query_z, support_z.mean(2), self.metric, self.scale)

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        n_support = episode.support_x.shape[0]
        # forward, not encode: training batches come from the sampler and need no input check per step
        embeddings = self.encoder(torch.cat([episode.support_x, episode.query_x]))
        prototypes = class_means(embeddings[:n_support], episode.support_y, episode.ways)
        logits = prototype_logits(embeddings[n_support:], prototypes, self.metric, self.scale)
        loss = F.cross_entropy(logits.float(), episode.query_y)
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return loss, accuracy
