"""A fixed-class classifier: encoder, optional centring and L2-normalisation, linear head.

This is what transfer learning on a labelled folder produces: `fewshot finetune` (an
encoder fine-tuned with a new head), and a linear probe or SimpleShot fitted on a whole
folder (see `fewshot.transfer.export`). It predicts its own classes, whose names it keeps
(``class_names``, also in the checkpoint's ``learner_config``), so it needs no support set:
``kind = FIXED`` (so ``fixed_classes``) tells `fewshot predict` so. It cannot be fitted on an episode; to
use its encoder for new classes, pair the encoder with a few-shot method
(``fewshot eval --checkpoint MODEL --method simpleshot``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.learners import LEARNERS
from fewshot.learners.base import FIXED, FewShotLearner
from fewshot.learners.feature_adapter import bottleneck


@LEARNERS.register("classifier")
class Classifier(FewShotLearner):
    """``logits = head(normalize(encoder(x) - center))`` over the classes ``class_names``.

    Args:
        encoder: maps ``(n, ...)`` inputs to ``(n, d)`` embeddings.
        class_names: the classes, in head-output order.
        normalize: L2-normalise the (centred) embedding before the head.
        centered: subtract the ``center`` buffer ``(d,)`` first.
        adapter_reduction: 0, or CLIP-Adapter's residual bottleneck ``A`` (``d -> d / r -> d``)
            between the normalisation and the head: ``z <- ratio * A(z) + (1 - ratio) * z``,
            normalised again when ``normalize`` (what `fewshot finetune --strategy
            clip-adapter` saves).
        adapter_ratio: the adapter's residual ratio.

    Shapes: ``(n, ...)`` -> logits ``(n, len(class_names))``.
    """

    kind = FIXED

    def __init__(
        self,
        encoder: Encoder,
        class_names: Sequence[str],
        normalize: bool = False,
        centered: bool = False,
        adapter_reduction: int = 0,
        adapter_ratio: float = 0.2,
    ) -> None:
        super().__init__()
        if len(class_names) < 2:
            raise FewshotError("a classifier needs at least two classes")
        self.encoder = encoder
        self.class_names = [str(name) for name in class_names]
        self.normalize = normalize
        self.centered = centered
        self.adapter_reduction, self.adapter_ratio = int(adapter_reduction), float(adapter_ratio)
        self.head = nn.Linear(encoder.embed_dim, len(self.class_names))
        self.register_buffer("center", torch.zeros(encoder.embed_dim))
        self.adapter = None
        if self.adapter_reduction:
            self.adapter = bottleneck(encoder.embed_dim, self.adapter_reduction)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(n, d)`` -> the head's inputs ``(n, d)``."""
        z = z.float()
        if self.centered:
            z = z - self.center
        z = F.normalize(z, dim=-1) if self.normalize else z
        if self.adapter is None:
            return z
        z = self.adapter_ratio * self.adapter(z) + (1 - self.adapter_ratio) * z
        return F.normalize(z, dim=-1) if self.normalize else z

    def logits_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, C)`` of already-embedded items ``(n, d)``."""
        return self.head(self.features(z))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_embeddings(self.encoder.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> Classifier:
        raise FewshotError(
            "this model is a fixed-class classifier (it predicts its own "
            f"{len(self.class_names)} classes and needs no support set); to classify new "
            "classes from a support set, use its encoder with a few-shot method, e.g. --method simpleshot"
        )
