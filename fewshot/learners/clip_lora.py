"""CLIP-LoRA (Zanella & Ben Ayed, "Low-Rank Few-Shot Adaptation of Vision-Language Models", CVPRW 2024).

Low-rank adapters on the query, key and value projections of every attention layer of both
CLIP encoders (`fewshot.learners.lora_attention`, in-house: PEFT would bring transformers and
accelerate for one wrapper), trained on the support set with the paper's fixed settings for
every data set: rank 2, alpha 1, dropout 0.25 on the adapters' input, AdamW lr 2e-4
(weight decay 0.01, betas 0.9/0.999), cosine schedule, batch 32, ``500 x shots`` iterations,
the prompt "a photo of a {}.". The loss is CLIP's cross-entropy of the scaled cosine between
the adapted image and text features; the text features are recomputed at every step.

The encoder's own weights are never written: the adapters are attached to its attention
layers only while this learner runs (`attached`), so frozen weights stay bit-identical and
learners that share the encoder are unaffected. Because the image tower changes, the learner
is of kind ``ADAPTIVE``: fitted on raw images, episode by episode. `merged_encoder` gives a
plain copy of the encoder with the adapters merged in (what `fewshot finetune` saves).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from fewshot.learners import LEARNERS
from fewshot.learners.base import ADAPTIVE, FewShotLearner
from fewshot.learners.clip_fitting import frozen, seeded, shots_of, train_steps
from fewshot.learners.lora_attention import adapters_for, attached, attention_layers, merge_into
from fewshot.learners.zeroshot import ZeroShot
from fewshot.zeroshot.prompt_learning import text_tower_of
from fewshot.zeroshot.templates import fill


@LEARNERS.register("clip-lora")
class ClipLoRA(ZeroShot):
    """LoRA on both CLIP encoders, trained on the support set (see the module docstring).

    Args:
        encoder: a `ClipEncoder` (open_clip towers with ``nn.MultiheadAttention``).
        rank, alpha, dropout: the adapters (scale ``alpha / rank``).
        encoders: ``both``, ``vision`` or ``text``: where adapters go.
        targets: projections adapted (``q``, ``k``, ``v``, ``o``).
        lr, iterations_per_shot, batch_size: AdamW, ``iterations_per_shot x shots`` steps.
        template: the prompt of every class.
        merged: score with the merged weights (PyTorch's attention; same outputs).
        seed: adapter initialisation, dropout and batch order. scale: logit scale (None: the encoder's).
    """

    kind = ADAPTIVE
    needs_clip_towers = True
    compare_adaptive = True
    exports_classifier = True
    compare_rank = 30

    fit = FewShotLearner.fit  # a support set is required

    def __init__(
        self,
        encoder,
        rank: int = 2,
        alpha: float = 1.0,
        dropout: float = 0.25,
        encoders: Literal["both", "vision", "text"] = "both",
        targets: Sequence[str] = ("q", "k", "v"),
        lr: float = 2e-4,
        iterations_per_shot: int = 500,
        batch_size: int = 32,
        template: str = "a photo of a {}.",
        merged: bool = False,
        seed: int = 0,
        scale: float | None = None,
    ) -> None:
        super().__init__(encoder, [template], scale)
        text_tower_of(encoder, "clip-lora")  # refuses encoders without open_clip's towers
        self.rank, self.alpha, self.dropout = int(rank), float(alpha), float(dropout)
        self.encoders, self.targets = encoders, [str(t) for t in targets]
        self.lr, self.iterations_per_shot, self.batch_size = (
            float(lr),
            int(iterations_per_shot),
            int(batch_size),
        )
        self.template, self.merged, self.seed = template, bool(merged), int(seed)
        self.adapters_: torch.nn.ModuleDict | None = None
        self.text_features_: torch.Tensor | None = None

    def _layer_prefixes(self) -> tuple[str, ...]:
        text = tuple(p for p in ("transformer.", "text.") if hasattr(self.encoder.model, p[:-1]))
        return {"both": ("visual.", *text), "vision": ("visual.",), "text": text}[self.encoders]

    def _new_adapters(self) -> torch.nn.ModuleDict:
        layers = attention_layers(self.encoder.model, self._layer_prefixes())
        return adapters_for(layers, self.rank, self.alpha, self.dropout, self.targets)

    def _class_tokens(self) -> torch.Tensor:
        prompts = [fill(self.template, name) for name in self.class_names_]
        return self.encoder.tokenizer(prompts).to(self.encoder.device)

    def _class_text(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Text features ``(C, d)`` of the class prompts (``tokens``, tokenised once per fit
        by the caller), through the adapted text tower."""
        tokens = self._class_tokens() if tokens is None else tokens
        with self.encoder._autocast():
            features = self.encoder.model.encode_text(tokens)
        return F.normalize(features.float(), dim=-1)

    def _image(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)  # (n, d), unit norm

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> ClipLoRA:
        """Train fresh adapters on raw support images ``(n, 3, H, W)`` with labels ``0..C-1``."""
        self._check_classes(int(support_y.max()) + 1)
        device = self.encoder.device
        support_x, support_y = support_x.to(device), support_y.to(device)
        with seeded(self.seed, device):
            self.adapters_ = self._new_adapters()
            params = list(self.adapters_.parameters())
            optimiser = torch.optim.AdamW(params, lr=self.lr, weight_decay=1e-2, betas=(0.9, 0.999))
            iterations = self.iterations_per_shot * shots_of(support_y)
            tokens, scale = self._class_tokens(), self.logit_scale  # once, not per step

            def batch_loss(index: torch.Tensor) -> torch.Tensor:
                logits = scale * self._image(support_x[index]) @ self._class_text(tokens).T
                return F.cross_entropy(logits, support_y[index])

            was_training = self.encoder.training
            self.encoder.train()  # as CLIP-LoRA trains (CLIP's own layers have no dropout)
            self.adapters_.train()  # the adapters' dropout
            try:
                with frozen(self.encoder), attached(self.encoder.model, self.adapters_):
                    self.losses_ = train_steps(
                        params,
                        batch_loss,
                        support_y.numel(),
                        iterations,
                        self.batch_size,
                        optimiser,
                        self.seed,
                        min_lr=1e-6,
                    )
            finally:
                self.encoder.train(was_training)
        with torch.no_grad(), self._adapted():
            self.text_features_ = self._class_text()
        return self

    def _adapted(self):
        self.adapters_.eval()
        return attached(self.encoder.model, self.adapters_, merged=self.merged)

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of raw query images ``(M, 3, H, W)`` through the adapted image tower."""
        self._check_fitted("adapters_")
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad(), self._adapted():
                features = self._image(query_x)
        finally:
            self.encoder.train(was_training)
        return self.logit_scale * features @ self.text_features_.to(features.device).T

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("clip-lora adapts the image tower: score raw images with logits(x)")

    def merged_encoder(self):
        """A copy of the encoder with the adapters merged into its weights (no LoRA code needed)."""
        self._check_fitted("adapters_")
        twin = copy.deepcopy(self.encoder)
        merge_into(twin.model, self.adapters_)
        return twin

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The head over the merged encoder's normalised features: ``(weight (C, d), bias (C,))``."""
        self._check_fitted("text_features_")
        weight = self.logit_scale * self.text_features_
        return weight, torch.zeros(weight.shape[0], device=weight.device)
