"""Zero-shot classification as an episodic method: prototypes from the class names' prompts.

The episode's support images are ignored; the names of its classes reach the learner through
``set_class_names(names)`` (called by `fewshot.evaluation.evaluate` before every ``fit``,
because ``uses_class_names = True``). Text prototypes come from
`fewshot.zeroshot.prompts.text_prototypes`, cached per class name, so an evaluation embeds
every class's prompts once. `ZeroShot` is the one zero-shot implementation: the classifier of
fixed classes, `fewshot.zeroshot.classifier.ZeroShotClassifier`, is a thin subclass of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fewshot.errors import FewshotError, NotFittedError
from fewshot.learners import LEARNERS
from fewshot.learners.base import EMBEDDING, FewShotLearner
from fewshot.scoring import prototype_logits
from fewshot.zeroshot.prompts import check_class_names, check_text_encoder, text_prototypes


class TextPrototypes:
    """Per-class-name cache of `text_prototypes` rows ``(d,)``: an evaluation embeds every
    class's prompts once, however many episodes it appears in."""

    def __init__(self, encoder, templates: str | Sequence[str] | None) -> None:
        check_text_encoder(encoder)
        self.encoder, self.templates = encoder, templates
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        """``(N, d)`` text prototypes of ``names``, in order."""
        missing = [n for n in dict.fromkeys(names) if n not in self._cache]
        if missing:
            embeddings = text_prototypes(self.encoder, check_class_names(missing), self.templates)
            self._cache.update(zip(missing, embeddings, strict=True))
        return torch.stack([self._cache[n] for n in names])


@LEARNERS.register("zeroshot")
class ZeroShot(FewShotLearner):
    """CLIP zero-shot over an episode's classes.

    Args:
        encoder: a CLIP encoder (``encode``, ``encode_text``, ``logit_scale``).
        templates: prompt template set or list (see `fewshot.zeroshot.templates`).
        scale: logit scale; None uses the encoder's.
    """

    compare_rank = -3

    kind = EMBEDDING
    uses_class_names = True

    def __init__(self, encoder, templates: str | Sequence[str] | None = "simple", scale: float | None = None):
        super().__init__()
        self.encoder = encoder
        self.templates = templates if templates is None or isinstance(templates, str) else list(templates)
        self.scale = scale
        self.class_names_: list[str] | None = None
        self.prototypes_: torch.Tensor | None = None
        self._text: TextPrototypes | None = None

    def set_class_names(self, names: Sequence[str]) -> None:
        """Names of the classes ``0..N-1`` of the next ``fit``."""
        self.class_names_ = list(names)

    def text_prototypes(self) -> torch.Tensor:
        """``(N, d)`` text prototypes of the current class names."""
        if self.class_names_ is None:
            raise NotFittedError(
                f"{type(self).__name__} needs the class names: call set_class_names(names) first"
            )
        if self._text is None:
            self._text = TextPrototypes(self.encoder, self.templates)
        return self._text(self.class_names_)

    @property
    def logit_scale(self) -> float:
        return float(self.scale if self.scale is not None else self.encoder.logit_scale)

    def _check_classes(self, n_classes: int) -> None:
        names = self.class_names_ or []
        if n_classes != len(names):
            raise FewshotError(
                f"the support set has {n_classes} classes but {len(names)} class names were set: "
                "call set_class_names with one name per class (in sorted label order)"
            )

    def _fit_embeddings(self, support_z: torch.Tensor | None, support_y: torch.Tensor | None):
        """Zero-shot: the support set is not used; embeds the class names' prompts."""
        self.prototypes_ = self.text_prototypes()
        return self

    def _learn_classes(self, support_y, n_items: int) -> torch.Tensor:
        encoded = super()._learn_classes(support_y, n_items)
        self._check_classes(len(self.classes_))
        return encoded

    def fit(self, support_x=None, support_y=None):
        """Embed the class names' prompts. A support set, if given, only fixes ``classes_``
        (its labels, one per class name, in sorted order); its images are not used."""
        if support_x is None and support_y is None:
            self.classes_ = None  # predictions are indices into the class names
            return self._fit_embeddings(None, None)
        return super().fit(support_x, support_y)

    def _fit(self, support_x: torch.Tensor, support_y: torch.Tensor):
        return self._fit_embeddings(None, support_y)

    def logits_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, N)`` of image embeddings ``(M, d)``."""
        self._check_fitted("prototypes_")
        prototypes = self.prototypes_.to(query_z.device)
        return prototype_logits(query_z.float(), prototypes, "cosine", self.logit_scale)

    @property
    def fitted(self) -> bool:
        """True once ``fit`` has embedded the class prompts."""
        return self.prototypes_ is not None

    @torch.no_grad()
    def proba_embeddings(self, query_z: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(M, N)`` of image embeddings ``(M, d)`` (softmax of the logits)."""
        return self.logits_embeddings(query_z).float().softmax(-1)
