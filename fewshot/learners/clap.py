"""Zero-shot-initialised linear probe (ZS-LP) and CLAP (Silva-Rodriguez et al., "A Closer Look
at the Few-Shot Adaptation of Large Vision-Language Models", CVPR 2024).

A cosine classifier on the frozen image features whose class weights start at the zero-shot
text prototypes ``T``:

    logits = s * normalize(f) @ normalize(W).T,    W initialised to T

CLAP adds a class-adaptive penalty that keeps every class's weights near its prototype,

    loss = CE + mean_c lambda_c * ||w_c - t_c||^2,

with ``lambda_c`` the zero-shot model's mean probability of class ``c`` on that class's own
support items (classes that zero-shot already gets right are held closer to their text
prototype). The multipliers are set once from the support set and kept: the paper's
no-validation protocol. Fixed settings: SGD lr 0.1, momentum 0.9, batch 256 (full batch for
few-shot support sets), 300 epochs. With ``epochs=0`` both are exactly zero-shot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.learners import LEARNERS
from fewshot.learners.clip_fitting import iterations_for, make_optimiser, train_steps
from fewshot.learners.clip_tuned import ClipTuned


def class_adaptive_multipliers(zero_shot_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(C,)``: mean zero-shot probability of each class over its own support items."""
    proba = zero_shot_logits.softmax(-1)  # (n, C)
    one_hot = F.one_hot(labels, proba.shape[1]).float()
    return (proba * one_hot).sum(0) / one_hot.sum(0).clamp(min=1)


@LEARNERS.register("clap")
class Clap(ClipTuned):
    """ZS-LP with CLAP's class-adaptive constraint (``constraint="clap"``) or without (``"none"``).

    Args:
        encoder: a CLIP encoder (``encode``, ``encode_text``, ``logit_scale``).
        templates: prompt templates of the text prototypes.
        constraint: ``clap`` (class-adaptive L2 penalty towards the prototypes) or ``none``.
        epochs, lr, batch_size: SGD (momentum 0.9) on the support set.
        seed: batch order. scale: logit scale (None: the encoder's).
    """

    compare_rank = 13
    exports_classifier = True

    def __init__(
        self,
        encoder,
        templates: str | Sequence[str] | None = "simple",
        constraint: Literal["clap", "none"] = "clap",
        epochs: int = 300,
        lr: float = 0.1,
        batch_size: int = 256,
        seed: int = 0,
        scale: float | None = None,
    ) -> None:
        super().__init__(encoder, templates, scale)
        self.constraint = constraint
        self.epochs, self.lr, self.batch_size, self.seed = int(epochs), float(lr), int(batch_size), int(seed)
        self.weight_: nn.Parameter | None = None
        self.multipliers_: torch.Tensor | None = None

    def _logits(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * features @ F.normalize(weight, dim=-1).T

    def _train(self, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
        prototypes = self.text_prototypes().to(features.device)
        self.prototypes_ = prototypes
        self.weight_ = nn.Parameter(prototypes.clone())
        penalised = self.constraint == "clap"
        with torch.no_grad():
            zero_shot = self._logits(features, prototypes)
            self.multipliers_ = class_adaptive_multipliers(zero_shot, labels) if penalised else None
        optimiser = make_optimiser([self.weight_], "sgd", self.lr)

        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            loss = F.cross_entropy(self._logits(features[index], self.weight_), labels[index])
            if penalised:
                distance = (self.weight_ - prototypes).pow(2).sum(-1)
                loss = loss + (self.multipliers_ * distance).mean()
            return loss

        iterations = iterations_for(labels.numel(), self.batch_size, self.epochs)
        return train_steps(
            [self.weight_], batch_loss, labels.numel(), iterations, self.batch_size, optimiser, self.seed
        )

    @torch.no_grad()
    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of image embeddings ``(M, d)``."""
        self._check_fitted("weight_")
        return self._logits(self._features(query_z), self.weight_)

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted model as a linear head on L2-normalised features: ``(weight (C, d), bias (C,))``."""
        self._check_fitted("weight_")
        weight = self.logit_scale * F.normalize(self.weight_.detach(), dim=-1)
        return weight, torch.zeros(weight.shape[0], device=weight.device)


@LEARNERS.register("zs-lp")
class ZeroShotLinearProbe(Clap):
    """The zero-shot-initialised linear probe without CLAP's constraint (``constraint="none"``)."""

    compare_rank = 14

    def __init__(self, encoder, constraint: Literal["clap", "none"] = "none", **kwargs) -> None:
        super().__init__(encoder, constraint=constraint, **kwargs)
