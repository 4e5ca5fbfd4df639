"""CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022).

The prompt template's words are replaced by learned context vectors in the text tower's
token-embedding space; the class name (and the template's ending) follow them, the text
encoder and the image encoder stay frozen, and the vectors are trained with cross-entropy on
the support set's image embeddings:

    logits = s * f @ normalize(text([ctx_1 .. ctx_M, name_c, "."])).T

- ``context="unified"``: one context shared by every class; ``"class"``: one per class (CSC).
- ``init``: a template whose words before ``{}`` start the context (``"a photo of a {}."``:
  4 vectors; untrained, the model is exactly zero-shot with that one template), or None:
  ``n_ctx`` vectors drawn from N(0, 0.02^2) (the paper's random initialisation).
- Fixed settings, no validation set: the paper's SGD (lr 0.002, momentum 0.9, cosine
  schedule), batch 32, epochs by shots (50 for 1-2, 100 for 4-8, 200 for 16).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.learners import LEARNERS
from fewshot.learners.clip_fitting import coop_epochs, iterations_for, make_optimiser, shots_of, train_steps
from fewshot.learners.clip_tuned import ClipTuned
from fewshot.zeroshot.prompt_learning import PromptTower

DEFAULT_INIT = "a photo of a {}."


@LEARNERS.register("coop")
class CoOp(ClipTuned):
    """Context optimisation: learned prompt vectors, CLIP frozen.

    Args:
        encoder: a `ClipEncoder` (open_clip text transformer).
        context: ``unified`` (one context) or ``class`` (class-specific contexts).
        n_ctx: context length when ``init`` is None.
        init: template whose words initialise the context, or None (random).
        epochs: passes over the support set; None: CoOp's schedule by shots.
        lr: SGD learning rate; batch_size: support items per step.
        seed: the random initialisation and batch order.
        scale: logit scale; None uses the encoder's.
    """

    needs_clip_towers = True
    exports_classifier = True
    method_name = "coop"  # for messages
    compare_rank = 10

    def __init__(
        self,
        encoder,
        context: Literal["unified", "class"] = "unified",
        n_ctx: int = 4,
        init: str | None = DEFAULT_INIT,
        epochs: int | None = None,
        lr: float = 2e-3,
        batch_size: int = 32,
        seed: int = 0,
        scale: float | None = None,
    ) -> None:
        super().__init__(encoder, None, scale)
        self.context, self.n_ctx, self.init = context, int(n_ctx), init
        self.epochs = None if epochs is None else int(epochs)
        self.lr, self.batch_size, self.seed = float(lr), int(batch_size), int(seed)
        self.tower = PromptTower(encoder, self.method_name)
        self.ctx_: nn.Parameter | None = None
        self.text_features_: torch.Tensor | None = None

    # -- the prompts ------------------------------------------------------------------------

    def _init_context(self, names: list[str]) -> None:
        """Tokens and embeddings of every class's prompt; the context vectors, initialised."""
        tokens, length = self.tower.prompts(names, self.init, self.n_ctx)
        base = self.tower.embed(tokens)  # (C, L, width)
        start = self.tower.start
        if self.init is not None:
            ctx = base[:1, start : start + length].clone()  # the template's words (same for every class)
        else:
            ctx = torch.randn(1, length, self.tower.width, device=base.device) * 0.02
        if self.context == "class":
            ctx = ctx.expand(len(names), -1, -1).clone()
        self.tokens_, self.base_ = tokens, base
        self.ctx_ = nn.Parameter(ctx)

    def prompt_features(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Text features ``(C, d)`` of the prompts with context ``ctx`` (default: the learned one)."""
        ctx = self.ctx_ if ctx is None else ctx
        ctx = ctx.expand(self.tokens_.shape[0], -1, -1)
        return self.tower(self.tower.with_context(self.base_, ctx), self.tokens_)

    # -- fitting ----------------------------------------------------------------------------

    def _iterations(self, labels: torch.Tensor) -> int:
        epochs = self.epochs if self.epochs is not None else coop_epochs(shots_of(labels))
        return iterations_for(labels.numel(), self.batch_size, epochs)

    def _train(self, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
        self._init_context(self.class_names_)
        optimiser = make_optimiser([self.ctx_], "sgd", self.lr, weight_decay=5e-4)

        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            text = self.prompt_features()
            return F.cross_entropy(self.logit_scale * features[index] @ text.T, labels[index])

        losses = train_steps(
            [self.ctx_],
            batch_loss,
            labels.numel(),
            self._iterations(labels),
            self.batch_size,
            optimiser,
            self.seed,
        )
        with torch.no_grad():
            self.text_features_ = self.prompt_features().detach()
        return losses

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of image embeddings ``(M, d)``."""
        self._check_fitted("text_features_")
        text = self.text_features_.to(query_z.device)
        return self.logit_scale * self._features(query_z) @ text.T

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted model as a linear head on L2-normalised features: ``(weight (C, d), bias (C,))``."""
        self._check_fitted("text_features_")
        weight = self.logit_scale * self.text_features_
        return weight, torch.zeros(weight.shape[0], device=weight.device)
