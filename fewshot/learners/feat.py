"""FEAT: Few-shot Embedding Adaptation with Transformer (Ye et al., CVPR 2020).

**Inductive**: the prototypes are adapted from the support set alone; each query is then
scored on its own against the adapted prototypes.

The class prototypes (support means) ``(N, d)`` are adapted jointly, as a set, by a
one-head self-attention block (the paper's FEAT, a Transformer layer without its
feed-forward part):

    P' = LayerNorm(P + Dropout(FC(Attention(P W_q, P W_k, P W_v))))

with ``softmax(Q K^T / sqrt(d))`` attention, so the adaptation is a set-to-set function:
permuting the classes permutes the adapted prototypes. Queries are scored by
``-||q - p'_c||^2 / temperature``.

Meta-training adds the paper's contrastive regulariser: each class's support and query
embeddings together form a set, which goes through the same attention block; every
instance's embedding is then classified against the centres of the adapted sets with temperature
``temperature2``, and ``balance`` times that cross-entropy is added to the query loss.

Defaults are the paper's Conv-4 settings (its released training scripts): ``temperature`` 64,
``temperature2`` 16, ``balance`` 1, dropout 0.5 after the attention's output layer and 0.1 on
the attention weights. The paper starts from a pre-trained backbone (a classifier trained on
the training classes) and trains FEAT on 5-way episodes; the toolkit's default ``--ways`` is 5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.sampling import Episode
from fewshot.scoring import class_means


class SetAttention(nn.Module):
    """FEAT's one-head self-attention over a set: ``(B, n, d)`` -> ``(B, n, d)``, equivariant in ``n``."""

    def __init__(self, dim: int, dropout: float = 0.5, attention_dropout: float = 0.1) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        for layer in (self.query, self.key, self.value):
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / (dim + dim)))
        self.out = nn.Linear(dim, dim)
        nn.init.xavier_normal_(self.out.weight)
        self.norm = nn.LayerNorm(dim)
        self.dropout, self.attention_dropout = nn.Dropout(dropout), nn.Dropout(attention_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        weights = (q @ k.transpose(-1, -2) / math.sqrt(x.shape[-1])).softmax(-1)
        attended = self.attention_dropout(weights) @ v
        return self.norm(x + self.dropout(self.out(attended)))


def squared_distance_logits(queries: torch.Tensor, centres: torch.Tensor, temperature: float) -> torch.Tensor:
    """``-||q - c||^2 / temperature``: queries ``(..., M, d)``, centres ``(..., N, d)`` -> ``(..., M, N)``."""
    return -torch.cdist(queries.float(), centres.float()).pow(2) / temperature


@LEARNERS.register("feat")
class FEAT(FewShotLearner):
    """FEAT over any `Encoder`: prototypes adapted by set-to-set self-attention (Ye et al. 2020).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        temperature: divides the squared distances of the query logits (the paper: 64).
        temperature2: the contrastive regulariser's temperature (the paper: 16 with Conv-4).
        balance: weight of the contrastive regulariser in the training loss (the paper: 1 with
            Conv-4; 0 turns it off).
        dropout: after the attention's output layer (the paper: 0.5).

    Shapes: ``fit(support_x (n, ...), support_y (n,))``; ``logits(query_x (M, ...))`` -> ``(M, N)``.
    """

    trained_head = True

    kind = EMBEDDING
    meta_trainable = True
    default_train_ways = 5
    compare_rank = 45

    def __init__(
        self,
        encoder: Encoder,
        temperature: float = 64.0,
        temperature2: float = 16.0,
        balance: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.temperature, self.temperature2 = float(temperature), float(temperature2)
        self.balance, self.dropout = float(balance), float(dropout)
        self.attention = SetAttention(encoder.embed_dim, self.dropout)
        self.prototypes_: torch.Tensor | None = None

    def adapt(self, prototypes: torch.Tensor) -> torch.Tensor:
        """The set-to-set adaptation: prototypes ``(..., N, d)`` -> adapted ``(..., N, d)``."""
        if prototypes.dim() == 2:
            return self.attention(prototypes.unsqueeze(0))[0]
        return self.attention(prototypes)

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> FEAT:
        """Adapt the class means of the support embeddings ``(n, d)``; keeps ``prototypes_`` ``(N, d)``."""
        with torch.no_grad():
            means = class_means(support_z.float(), support_y, int(support_y.max()) + 1)
            self.prototypes_ = self.adapt(means)
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("prototypes_")
        return squared_distance_logits(query_z, self.prototypes_, self.temperature)

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``."""
        return squared_distance_logits(query_z, self.adapt(support_z.float().mean(2)), self.temperature)

    def contrastive_loss(self, embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
        """The paper's regulariser: each class's instances ``(n, d)`` (support and query) adapted as
        one set; every instance's embedding classified against the centres of the adapted sets."""
        adapted = torch.empty_like(embeddings)
        for c in range(ways):  # classes may have different sizes, so one set at a time
            members = (labels == c).nonzero().squeeze(1)
            adapted[members] = self.adapt(embeddings[members])
        centres = class_means(adapted, labels, ways)
        return F.cross_entropy(squared_distance_logits(embeddings, centres, self.temperature2), labels)

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        n_support = episode.support_x.shape[0]
        # forward, not encode: training batches come from the sampler and need no input check per step
        embeddings = self.encoder(torch.cat([episode.support_x, episode.query_x])).float()
        prototypes = self.adapt(class_means(embeddings[:n_support], episode.support_y, episode.ways))
        logits = squared_distance_logits(embeddings[n_support:], prototypes, self.temperature)
        loss = F.cross_entropy(logits, episode.query_y)
        if self.balance > 0:
            labels = torch.cat([episode.support_y, episode.query_y])
            loss = loss + self.balance * self.contrastive_loss(embeddings, labels, episode.ways)
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return loss, accuracy
