"""Tip-Adapter and Tip-Adapter-F (Zhang et al., 2022): a cache model over CLIP zero-shot.

The cache holds the support embeddings (keys, L2-normalised) and their one-hot labels
(values). A query ``f`` (normalised) gets

    logits = s * f @ W.T + alpha * exp(-beta * (1 - f @ keys.T)) @ values

where ``W`` are the text prototypes of the episode's classes (`fewshot.zeroshot.prompts.text_prototypes`,
through `ZeroShot.text_prototypes`) and ``s`` the CLIP logit scale.

Choosing ``alpha`` and ``beta`` uses the support set only, never the queries: every pair of
the grids is scored by leave-one-out on the support set (each support item is classified by
the zero-shot logits plus the cache of the *other* support items) and the pair with the
lowest leave-one-out cross-entropy wins (each class's cache sum rescaled to the full shot
count, since leaving an item out leaves its own class one item short). With one shot,
leaving an item out empties its class's cache, so the search is uninformative: the paper's
defaults (``alpha=1``, ``beta=5.5``) are used instead.

Tip-Adapter-F (``train_steps > 0``) then trains the keys, initialised from the support
embeddings, with AdamW on the support set's cross-entropy (the text prototypes and the
encoder stay frozen).

``text=False`` keeps the cache model alone (the zero-shot term is left out and no class names
are needed), so Tip-Adapter's cache runs on image-only encoders such as EfficientNet-Lite.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fewshot.learners import LEARNERS
from fewshot.learners.base import FewShotLearner
from fewshot.learners.zeroshot import ZeroShot

DEFAULT_ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
DEFAULT_BETAS = (1.0, 3.0, 5.5, 8.0, 12.0)


def cache_logits(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float) -> torch.Tensor:
    """``exp(-beta * (1 - q @ keys.T)) @ values``: queries ``(M, d)``, keys ``(n, d)``, values ``(n, N)``."""
    return torch.exp(-beta * (1 - query @ keys.T)) @ values


@LEARNERS.register("tip-adapter")
class TipAdapter(ZeroShot):
    """Tip-Adapter (``train_steps=0``, training-free) or Tip-Adapter-F (``train_steps > 0``).

    Args:
        encoder: a CLIP encoder (``encode``, ``encode_text``, ``logit_scale``).
        templates: prompt templates for the zero-shot part.
        alphas, betas: the grids searched on the support set (leave-one-out).
        default_alpha, default_beta: used when some class has a single support item.
        train_steps: Tip-Adapter-F's full-batch AdamW steps on the support set (0: none).
        lr: Tip-Adapter-F's learning rate.
        scale: CLIP logit scale; None uses the encoder's.
        text: False: the cache model alone, without the zero-shot term (any image encoder).
    """

    compare_rank = -2

    def __init__(
        self,
        encoder,
        templates: str | Sequence[str] | None = "simple",
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        betas: Sequence[float] = DEFAULT_BETAS,
        default_alpha: float = 1.0,
        default_beta: float = 5.5,
        train_steps: int = 0,
        lr: float = 1e-3,
        scale: float | None = None,
        text: bool = True,
    ) -> None:
        super().__init__(encoder, templates, scale)
        self.text = bool(text)
        self.alphas = [float(a) for a in alphas]
        self.betas = [float(b) for b in betas]
        self.default_alpha, self.default_beta = float(default_alpha), float(default_beta)
        self.train_steps = int(train_steps)
        self.lr = float(lr)
        self.keys_: torch.Tensor | None = None
        self.values_: torch.Tensor | None = None
        self.alpha_: float | None = None
        self.beta_: float | None = None

    def choose_blend(self, features: torch.Tensor, labels: torch.Tensor, zero_shot: torch.Tensor):
        """``(alpha, beta)`` by leave-one-out cross-entropy on the support set.

        Args:
            features: normalised support embeddings ``(n, d)``; labels ``(n,)``;
            zero_shot: their zero-shot logits ``(n, N)``.
        """
        if torch.bincount(labels).min() < 2 or (len(self.alphas) == 1 and len(self.betas) == 1):
            if len(self.alphas) == 1 and len(self.betas) == 1:
                return self.alphas[0], self.betas[0]
            return self.default_alpha, self.default_beta
        values = F.one_hot(labels, zero_shot.shape[1]).float()
        affinity = features @ features.T
        betas = torch.tensor(self.betas, device=features.device).view(-1, 1, 1)
        alphas = torch.tensor(self.alphas, device=features.device).view(-1, 1, 1, 1)
        weights = torch.exp(-betas * (1 - affinity))  # (B, n, n)
        weights = weights * (1 - torch.eye(affinity.shape[0], device=features.device))  # leave self out
        # Leaving an item out leaves its class one item short: rescale every class's cache sum to
        # the full shot count, or the search would be biased against the item's own class.
        counts = values.sum(0)  # (N,)
        present = counts - values  # (n, N): items of each class in the cache of item i
        loo = (weights @ values) * counts / present.clamp(min=1)
        logits = zero_shot + alphas * loo  # (A, B, n, N)
        n_classes = zero_shot.shape[1]
        losses = F.cross_entropy(
            logits.reshape(-1, n_classes), labels.repeat(len(self.alphas) * len(self.betas)), reduction="none"
        ).view(len(self.alphas), len(self.betas), -1)
        # First minimum in (alpha, beta) grid order: ties go to the smaller alpha, then beta.
        best = int(torch.argmin(losses.mean(-1).reshape(-1)))
        return self.alphas[best // len(self.betas)], self.betas[best % len(self.betas)]

    def _learn_classes(self, support_y, n_items: int) -> torch.Tensor:
        if self.text:  # one class name per class
            return super()._learn_classes(support_y, n_items)
        return FewShotLearner._learn_classes(self, support_y, n_items)

    def _zero_shot(self, features: torch.Tensor, n_classes: int) -> torch.Tensor:
        """Zero-shot logits ``(n, N)`` of normalised features ``(n, d)`` (zeros when ``text=False``)."""
        if not self.text:
            return features.new_zeros(features.shape[0], n_classes)
        return self.logit_scale * features @ self.prototypes_.T

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TipAdapter:
        with torch.no_grad():
            return self._fit_embeddings(self.encoder(support_x), support_y)

    def _fit_embeddings(self, support_z: torch.Tensor, support_y: torch.Tensor) -> TipAdapter:
        """Build the cache from support embeddings ``(n, d)`` and labels ``(n,)``; choose the blend."""
        n_classes = len(self.classes_) if self.classes_ is not None else int(support_y.max()) + 1
        self.prototypes_ = self.text_prototypes().to(support_z.device) if self.text else None
        features = F.normalize(support_z.detach().float(), dim=-1)
        values = F.one_hot(support_y, n_classes).float()
        zero_shot = self._zero_shot(features, n_classes)
        self.alpha_, self.beta_ = self.choose_blend(features, support_y, zero_shot)
        keys = features.clone()
        if self.train_steps > 0:
            with torch.enable_grad():
                keys.requires_grad_(True)
                optimizer = torch.optim.AdamW([keys], lr=self.lr, eps=1e-4)
                for _ in range(self.train_steps):
                    logits = zero_shot + self.alpha_ * cache_logits(features, keys, values, self.beta_)
                    loss = F.cross_entropy(logits, support_y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            keys = keys.detach()
        self.keys_, self.values_ = keys, values
        return self

    @property
    def fitted(self) -> bool:
        return self.keys_ is not None

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of image embeddings ``(M, d)``."""
        self._check_fitted("keys_")
        features = F.normalize(query_z.float(), dim=-1)
        zero_shot = self._zero_shot(features, self.values_.shape[1])
        return zero_shot + self.alpha_ * cache_logits(features, self.keys_, self.values_, self.beta_)


@LEARNERS.register("tip-adapter-f")
class TipAdapterF(TipAdapter):
    """Tip-Adapter-F: `TipAdapter` whose cache keys are trained on the support set (100 steps)."""

    compare_rank = -1

    def __init__(self, encoder, train_steps: int = 100, **kwargs) -> None:
        super().__init__(encoder, train_steps=train_steps, **kwargs)
