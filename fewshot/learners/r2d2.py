"""R2-D2: a differentiable closed-form ridge-regression head (Bertinetto et al., ICLR 2019).

**Inductive**: the head is solved from the support set alone; each query is scored on its own.

Per episode, the support embeddings ``X`` ``(n, d)`` (with a column of ones appended, the
paper's bias) are regressed onto the one-hot labels ``Y`` ``(n, N)`` by ridge regression in
the paper's Woodbury form, an ``n x n`` solve instead of a ``d x d`` one (``n << d``):

    W = X^T (X X^T + lambda I_n)^{-1} Y        logits(x) = alpha * [x, 1] W + beta

``lambda`` (learned in log space, so it stays positive), ``alpha`` and ``beta`` (the paper's
scalar "adjust" layer) are meta-learned with the encoder by back-propagating the query
cross-entropy through the solve. This is the MetaOptNet-style head of the family (Lee et
al. 2019 swap the ridge for an SVM; their R2-D2 baseline is this head).

Defaults from the papers: ``lambda`` starts at 1 and is learned (Bertinetto et al.'s code);
``alpha`` starts at 1 (MetaOptNet's learned logit scale; Bertinetto et al.'s code starts it at
1e-4 for its own feature scale), ``beta`` at 0. The paper trains with more ways than it tests
(60 on Omniglot), the toolkit's default ``--ways`` 60.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.sampling import Episode


def ridge_weights(support: torch.Tensor, targets: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Woodbury ridge solution ``X^T (X X^T + lam I)^{-1} Y``: support ``(..., n, d)``, targets
    ``(..., n, N)`` -> weights ``(..., d, N)`` (float32 or wider)."""
    x = support.float() if support.dtype in (torch.float16, torch.bfloat16) else support
    gram = x @ x.transpose(-1, -2)  # (..., n, n)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return x.transpose(-1, -2) @ torch.linalg.solve(gram + lam.to(gram.dtype) * eye, targets.to(gram.dtype))


def with_ones(z: torch.Tensor) -> torch.Tensor:
    """Append the bias column: ``(..., d)`` -> ``(..., d + 1)``."""
    return torch.cat([z, torch.ones_like(z[..., :1])], -1)


@LEARNERS.register("r2d2")
class R2D2(FewShotLearner):
    """Ridge-regression head over any `Encoder` (Bertinetto et al. 2019).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        init_lambda: the ridge penalty's starting value (the paper: 1, then learned).
        learn_lambda: meta-learn the penalty (the paper: yes).
        init_scale: starting ``alpha``, the logit scale (learned).

    Shapes: ``fit(support_x (n, ...), support_y (n,))``; ``logits(query_x (M, ...))`` -> ``(M, N)``.
    Learned parameters: ``log_lambda``, ``scale`` and ``bias`` (scalars, saved in checkpoints).
    """

    kind = EMBEDDING
    meta_trainable = True
    compare_rank = 40

    def __init__(
        self, encoder: Encoder, init_lambda: float = 1.0, learn_lambda: bool = True, init_scale: float = 1.0
    ) -> None:
        super().__init__()
        if not init_lambda > 0:
            raise FewshotError(f"init_lambda must be positive, got {init_lambda}")
        self.encoder = encoder
        self.init_lambda, self.learn_lambda, self.init_scale = (
            float(init_lambda),
            bool(learn_lambda),
            float(init_scale),
        )
        self.log_lambda = nn.Parameter(
            torch.tensor(math.log(self.init_lambda)), requires_grad=self.learn_lambda
        )
        self.scale = nn.Parameter(torch.tensor(self.init_scale))
        self.bias = nn.Parameter(torch.tensor(0.0))
        self.weights_: torch.Tensor | None = None

    def _head_logits(
        self, support_z: torch.Tensor, onehot: torch.Tensor, query_z: torch.Tensor
    ) -> torch.Tensor:
        """Support ``(..., n, d)``, one-hot ``(..., n, N)``, queries ``(..., M, d)`` -> ``(..., M, N)``."""
        weights = ridge_weights(with_ones(support_z), onehot, self.log_lambda.exp())
        return self.scale * (with_ones(query_z).to(weights.dtype) @ weights) + self.bias

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> R2D2:
        """Solve the ridge head on support embeddings ``(n, d)``; keeps ``weights_`` ``(d + 1, N)``."""
        onehot = F.one_hot(support_y, int(support_y.max()) + 1)
        with torch.no_grad():
            self.weights_ = ridge_weights(with_ones(support_z), onehot, self.log_lambda.exp())
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("weights_")
        return self.scale * (with_ones(query_z).to(self.weights_.dtype) @ self.weights_) + self.bias

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``."""
        b, n, k, d = support_z.shape
        labels = torch.arange(n, device=support_z.device).repeat_interleave(k)
        onehot = F.one_hot(labels, n).expand(b, n * k, n)
        return self._head_logits(support_z.reshape(b, n * k, d), onehot, query_z)

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        n_support = episode.support_x.shape[0]
        # forward, not encode: training batches come from the sampler and need no input check per step
        embeddings = self.encoder(torch.cat([episode.support_x, episode.query_x]))
        onehot = F.one_hot(episode.support_y, episode.ways)
        logits = self._head_logits(embeddings[:n_support], onehot, embeddings[n_support:])
        loss = F.cross_entropy(logits.float(), episode.query_y)
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return loss, accuracy
