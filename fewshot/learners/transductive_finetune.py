"""Transductive fine-tuning (Dhillon, Chaudhari, Ravichandran and Soatto, "A Baseline for
Few-Shot Image Classification", ICLR 2020), on frozen embeddings. TRANSDUCTIVE: it uses the
episode's unlabelled queries.

A linear head on L2-normalised embeddings, ``logits = scale * normalize(z) @ W.T + b``, starts
from the support-based initialisation of the paper (``W`` = the normalised class means of the
normalised support embeddings, ``b = 0``) and is trained by Adam on

    CE(support) + mean entropy of the query predictions

(the paper's objective, both terms weighted 1). The paper fine-tunes the whole backbone too;
here the embeddings are frozen and only the head trains. The paper's defaults: 25 epochs (one
full-batch step each here), Adam with learning rate 5e-5. With so small a step the head stays
close to its initialisation (cosine nearest class mean); raise ``steps`` or ``lr`` to let the
query entropy move it further.

``head="l2"`` is easyfsl's head instead: ``logits = -scale * ||z - w_n||`` (the distance, not
squared) on the embeddings as given, ``w`` starting at the support class means, no bias.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.transductive import TransductiveLearner, adam_steps, entropy, weighted_means


@LEARNERS.register("transductive-finetune")
class TransductiveFinetune(TransductiveLearner):
    """A head fitted on support cross-entropy plus query entropy (transductive).

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        steps: full-batch Adam steps per episode (the paper: 25 epochs).
        lr: Adam's learning rate (5e-5).
        scale: multiplies the cosine logits (1: the paper's unscaled head).
        entropy_weight: the query entropy term's weight (1).
        head: ``"cosine"`` (the paper's normalised linear head with a bias) or ``"l2"``
            (easyfsl's negative distance to class weights).
    """

    def __init__(
        self,
        encoder: Encoder,
        steps: int = 25,
        lr: float = 5e-5,
        scale: float = 1.0,
        entropy_weight: float = 1.0,
        head: Literal["cosine", "l2"] = "cosine",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.steps = steps
        self.lr = lr
        self.scale = scale
        self.entropy_weight = entropy_weight
        self.head = head

    def transduce(self, support: torch.Tensor, onehot: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if self.head == "l2":
            weight = weighted_means(onehot, support).clone().requires_grad_(True)
            params = [weight]

            def head(x: torch.Tensor) -> torch.Tensor:
                return -self.scale * torch.cdist(x, weight)
        elif self.head == "cosine":
            support, query = F.normalize(support, dim=-1), F.normalize(query, dim=-1)
            weight = F.normalize(weighted_means(onehot, support), dim=-1).clone().requires_grad_(True)
            bias = torch.zeros(weight.shape[:2], device=weight.device, requires_grad=True)  # (B, N)
            params = [weight, bias]

            def head(x: torch.Tensor) -> torch.Tensor:
                return self.scale * x @ weight.transpose(1, 2) + bias.unsqueeze(1)
        else:
            raise FewshotError(f"unknown transductive-finetune head {self.head!r}: use 'cosine' or 'l2'")

        def loss() -> torch.Tensor:  # the sum over the block of each episode's loss
            cross_entropy = -(onehot * head(support).log_softmax(-1)).sum(-1).mean(1)
            query_entropy = entropy(head(query).softmax(-1)).mean(1)
            return (cross_entropy + self.entropy_weight * query_entropy).sum()

        adam_steps(params, loss, self.steps, self.lr)
        with torch.no_grad():
            return head(query)
