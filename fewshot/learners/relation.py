"""Relation Networks (Sung et al., CVPR 2018).

**Inductive** (in eval mode, as evaluation runs it): each query's relation scores depend on the
support set and that query only. In train mode the relation module's BatchNorm normalises
over the episode's pairs, as in the paper.

Each class's support feature maps are summed (the paper's K-shot pooling), concatenated
with a query's feature map along the channels, and a learned relation module scores the
pair: two conv blocks (3x3 conv of ``channels`` filters, BatchNorm, ReLU, 2x2 max-pool) and
two fully connected layers (``hidden`` units, ReLU, then 1 unit). The relation score is the
sigmoid of that output; `logits` returns the output itself (its softmax ranks the classes
like the scores do). Meta-training regresses the scores onto the one-hot labels with the
mean squared error, as in the paper.

Feature maps: the learner is of kind ``EMBEDDING``, so evaluation embeds every item once;
the flat embedding is reshaped to the encoder's ``feature_shape`` (Conv-4 declares it: its
embedding is the last block's map flattened). An encoder without one (a pooled ResNet-12,
precomputed features) is scored as ``(d, 1, 1)`` maps, where the 3x3 convolutions act as
1x1 ones. A block's max-pool is skipped when its map is already 1x1 (Conv-4 at 28x28 gives
1x1 maps; the paper's Omniglot network keeps larger maps by not pooling in its last blocks).

Defaults from the paper: 64 filters, 8 hidden units, sum over the shots, Adam with learning
rate 1e-3, 5-way training episodes (the toolkit's default ``--ways`` 5).

The paper trains one model per number of shots: a sum of K maps is K times one map, and the
relation module (its BatchNorm statistics included) learns that scale. `fewshot train`
therefore records the training episodes' shots as ``train_shots``, and a support set of
another K is pooled as ``train_shots`` times its mean: the same as the sum at the training
K, the trained scale at any other (a 1-shot model that summed 5 maps fell to 28.8% on 5-way
5-shot Omniglot episodes, 98.3% pooled this way: `benchmarks/RESULTS.md`). Without
``train_shots`` the plain sum is taken.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.sampling import Episode
from fewshot.scoring import class_means

Aggregate = Literal["sum", "mean"]
PAIR_ELEMENTS = 1 << 24  # pair-tensor elements per relation-module call in batched evaluation


def relation_module(shape: tuple[int, int, int], channels: int, hidden: int) -> nn.Sequential:
    """The module scoring a pair of ``shape`` ``(C, H, W)`` maps: ``(P, 2C, H, W)`` -> ``(P, 1)``."""
    layers: list[nn.Module] = []
    in_channels, (height, width) = 2 * shape[0], shape[1:]
    for _ in range(2):
        layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        if min(height, width) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        in_channels = channels
    flat = channels * height * width
    layers += [nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, 1)]
    return nn.Sequential(*layers)


@LEARNERS.register("relation")
class RelationNet(FewShotLearner):
    """Relation network over any `Encoder` (Sung et al. 2018).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings; ``encoder.feature_shape``
            ``(C, H, W)`` (when it has one) is the map that ``d`` flattens.
        channels: filters of the relation module's conv blocks (the paper: 64).
        hidden: units of its hidden fully connected layer (the paper: 8).
        aggregate: how a class's K support maps are pooled: ``"sum"`` (the paper) or ``"mean"``
            (the same scale for every K).
        train_shots: with ``"sum"``, the shots of the training episodes (`fewshot train`
            records them): a K-shot class is pooled as ``train_shots`` times its mean. None:
            the plain sum.

    Shapes: ``fit(support_x (n, ...), support_y (n,))``; ``logits(query_x (M, ...))`` -> ``(M, N)``
    (relation scores are their sigmoid).
    """

    trained_head = True

    kind = EMBEDDING
    meta_trainable = True
    default_train_ways = 5
    compare_rank = 35

    def __init__(
        self,
        encoder: Encoder,
        channels: int = 64,
        hidden: int = 8,
        aggregate: Aggregate = "sum",
        train_shots: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.channels, self.hidden, self.aggregate = int(channels), int(hidden), aggregate
        self.train_shots = None if train_shots is None else int(train_shots)
        self.feature_shape = tuple(getattr(encoder, "feature_shape", None) or (encoder.embed_dim, 1, 1))
        self.relation = relation_module(self.feature_shape, self.channels, self.hidden)
        self.classes_z_: torch.Tensor | None = None

    def _class_maps(self, support_z: torch.Tensor, support_y: torch.Tensor, ways: int) -> torch.Tensor:
        """Pooled support embeddings per class: ``(n, d)`` -> ``(N, d)``."""
        means = class_means(support_z, support_y, ways)
        if self.aggregate == "mean":
            return means
        if self.train_shots is not None:
            return means * self.train_shots
        return means * torch.bincount(support_y, minlength=ways).unsqueeze(1).to(means.dtype)

    def record_training(self, config: Any) -> None:
        """Remember the training episodes' shots (``config.shots``), the scale the sum learns."""
        if self.aggregate == "sum" and self.train_shots is None:
            self.train_shots = int(config.shots)

    def relation_logits(self, classes_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Class embeddings ``(..., N, d)``, queries ``(..., M, d)`` -> relation logits ``(..., M, N)``."""
        n, m = classes_z.shape[-2], query_z.shape[-2]
        lead = query_z.shape[:-2]
        maps = (-1, *self.feature_shape)
        pairs = torch.cat(
            [
                classes_z.unsqueeze(-3).expand(*lead, m, n, -1).reshape(maps),
                query_z.unsqueeze(-2).expand(*lead, m, n, -1).reshape(maps),
            ],
            1,
        )
        return self.relation(pairs.to(self.relation[0].weight.dtype)).reshape(*lead, m, n)

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> RelationNet:
        """Keep the pooled class embeddings ``(N, d)`` of support embeddings ``(n, d)``."""
        self.classes_z_ = self._class_maps(support_z.detach(), support_y, int(support_y.max()) + 1)
        return self

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Relation logits ``(M, N)`` of already-embedded queries ``(M, d)``."""
        self._check_fitted("classes_z_")
        return self.relation_logits(self.classes_z_, query_z)

    def batch_logits_embeddings(self, support_z: torch.Tensor, query_z: torch.Tensor) -> torch.Tensor:
        """Many episodes at once: support ``(B, N, K, d)``, queries ``(B, M, d)`` -> ``(B, M, N)``,
        in chunks of episodes so that the pair tensor stays near ``PAIR_ELEMENTS`` elements."""
        b, n, k, d = support_z.shape
        pooled = support_z.mean(2)
        if self.aggregate == "sum":
            pooled = pooled * (self.train_shots or k)
        chunk = max(1, PAIR_ELEMENTS // (query_z.shape[1] * n * 2 * d))
        parts = [
            self.relation_logits(pooled[i : i + chunk], query_z[i : i + chunk]) for i in range(0, b, chunk)
        ]
        return torch.cat(parts)

    def episode_loss(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        n_support = episode.support_x.shape[0]
        # forward, not encode: training batches come from the sampler and need no input check per step
        embeddings = self.encoder(torch.cat([episode.support_x, episode.query_x]))
        classes_z = self._class_maps(embeddings[:n_support], episode.support_y, episode.ways)
        logits = self.relation_logits(classes_z, embeddings[n_support:])
        targets = F.one_hot(episode.query_y, episode.ways).to(torch.float32)
        loss = F.mse_loss(torch.sigmoid(logits.float()), targets)
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return loss, accuracy
