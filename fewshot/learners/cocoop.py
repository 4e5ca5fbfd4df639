"""CoCoOp (Zhou et al., "Conditional Prompt Learning for Vision-Language Models", CVPR 2022).

CoOp's context plus a small meta-network (Linear d -> d/16, ReLU, Linear d/16 -> width) that
turns each image's embedding into a shift added to every context vector, so each image gets
prompts of its own:

    logits_i = s * f_i @ normalize(text([ctx + pi(f_i), name_c, "."])).T

The text and image encoders stay frozen; the context and the meta-network are trained on the
support set (the paper's fixed settings: SGD lr 0.002, batch 1, 10 epochs, context
initialised from "a photo of a"). Each query is scored with its own prompts only, so
queries never influence one another. The text tower runs once per image and class, so it
costs ``C`` text forwards per query.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.base import FIXED, FewShotLearner
from fewshot.learners.clip_fitting import iterations_for, make_optimiser, train_steps
from fewshot.learners.coop import DEFAULT_INIT, CoOp


@LEARNERS.register("cocoop")
class CoCoOp(CoOp):
    """Conditional context optimisation (see the module docstring).

    Args:
        encoder: a `ClipEncoder` (open_clip text transformer).
        n_ctx, init: as `CoOp` (one context shared by the classes).
        epochs: passes over the support set; lr: SGD learning rate; batch_size: images per step.
        chunk: queries scored per text-tower call (memory, not results).
        seed, scale: as `CoOp`.
    """

    compare_rank = 11
    exports_classifier = True  # as a `CoCoOpClassifier` (`export_model`): prompts per image
    method_name = "cocoop"

    def __init__(
        self,
        encoder,
        n_ctx: int = 4,
        init: str | None = DEFAULT_INIT,
        epochs: int = 10,
        lr: float = 2e-3,
        batch_size: int = 1,
        chunk: int = 32,
        seed: int = 0,
        scale: float | None = None,
    ) -> None:
        super().__init__(encoder, "unified", n_ctx, init, epochs, lr, batch_size, seed, scale)
        self.chunk = int(chunk)
        self.meta_net_: nn.Module | None = None

    def _meta_net(self, dim: int, device: torch.device) -> nn.Module:
        hidden = max(dim // 16, 1)
        return nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, self.tower.width)
        ).to(device)

    def conditioned_features(self, features: torch.Tensor) -> torch.Tensor:
        """Text features ``(B, C, d)`` of each image's own prompts, for image features ``(B, d)``."""
        n_classes = self.tokens_.shape[0]
        shift = self.meta_net_(features)  # (B, width)
        ctx = self.ctx_[0].unsqueeze(0) + shift.unsqueeze(1)  # (B, n_ctx, width)
        ctx = ctx.unsqueeze(1).expand(-1, n_classes, -1, -1).reshape(-1, *ctx.shape[1:])
        base = self.base_.repeat(features.shape[0], 1, 1)
        tokens = self.tokens_.repeat(features.shape[0], 1)
        text = self.tower(self.tower.with_context(base, ctx), tokens)
        return text.view(features.shape[0], n_classes, -1)

    def _conditioned_logits(self, features: torch.Tensor) -> torch.Tensor:
        text = self.conditioned_features(features)
        return self.logit_scale * torch.einsum("bd,bcd->bc", features, text)

    def _train(self, features: torch.Tensor, labels: torch.Tensor) -> list[float]:
        self._init_context(self.class_names_)
        self.meta_net_ = self._meta_net(features.shape[1], features.device)
        params = [self.ctx_, *self.meta_net_.parameters()]
        optimiser = make_optimiser(params, "sgd", self.lr)

        def batch_loss(index: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self._conditioned_logits(features[index]), labels[index])

        iterations = iterations_for(labels.numel(), self.batch_size, self.epochs)
        losses = train_steps(
            params, batch_loss, labels.numel(), iterations, self.batch_size, optimiser, self.seed
        )
        self.text_features_ = torch.empty(0)  # fitted: queries get their own prompts
        return losses

    @torch.no_grad()
    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of image embeddings ``(M, d)``, each from its own prompts."""
        self._check_fitted("meta_net_")
        features = self._features(query_z)
        parts = [self._conditioned_logits(part) for part in features.split(self.chunk)]
        return torch.cat(parts) if parts else features.new_zeros(0, self.tokens_.shape[0])

    def classifier_weights(self):
        raise NotImplementedError("CoCoOp conditions its prompts on every image: it is not a linear head")

    def export_model(self, encoder, class_names) -> CoCoOpClassifier:
        """The fitted context and meta-network as a fixed-class model over ``encoder``."""
        self._check_fitted("meta_net_")
        model = CoCoOpClassifier(encoder, class_names, self.n_ctx, self.init, self.chunk, self.scale)
        with torch.no_grad():
            model.ctx.copy_(self.ctx_)
            model.meta_net.load_state_dict(self.meta_net_.state_dict())
        return model


@LEARNERS.register("cocoop-classifier")
class CoCoOpClassifier(FewShotLearner):
    """A fitted CoCoOp over its own classes (what `fewshot finetune --strategy cocoop` saves):
    each image still gets its own prompts, so the text tower runs at prediction time.

    Args: ``encoder`` (a `ClipEncoder`), ``class_names`` (head order), and CoCoOp's ``n_ctx``,
    ``init``, ``chunk``, ``scale``. Its weights: the encoder's, ``ctx`` ``(1, L, width)`` and
    ``meta_net``. Shapes: ``(n, 3, H, W)`` -> logits ``(n, len(class_names))``.
    """

    kind = FIXED
    needs_clip_towers = True

    def __init__(
        self,
        encoder,
        class_names,
        n_ctx: int = 4,
        init: str | None = DEFAULT_INIT,
        chunk: int = 32,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.encoder, self.class_names = encoder, [str(name) for name in class_names]
        self.n_ctx, self.init, self.chunk, self.scale = int(n_ctx), init, int(chunk), scale
        prompts = CoCoOp(encoder, n_ctx=n_ctx, init=init, chunk=chunk, scale=scale)
        prompts.set_class_names(self.class_names)
        prompts._init_context(self.class_names)
        self.ctx = prompts.ctx_
        self.meta_net = prompts.meta_net_ = prompts._meta_net(encoder.embed_dim, prompts.tower.device)
        self.register_buffer("tokens", prompts.tokens_, persistent=False)
        prompts.text_features_ = torch.empty(0)
        # the fitted CoCoOp that scores, sharing ``ctx`` and ``meta_net``; not a submodule, as
        # it holds the encoder too (its weights would be saved twice)
        object.__setattr__(self, "_prompts", prompts)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        prompts = self._prompts
        # the prompts' embeddings from the encoder's current weights and device (after loading)
        prompts.tokens_, prompts.base_ = self.tokens, prompts.tower.embed(self.tokens)
        return prompts.logits_embeddings(self.encoder.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def fit(self, support_x, support_y):
        raise FewshotError(
            "this model is a fixed-class fitted CoCoOp (it predicts its own "
            f"{len(self.class_names)} classes and needs no support set); to learn new classes, "
            "fit `--method cocoop` on the CLIP encoder"
        )
