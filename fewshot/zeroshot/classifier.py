"""Zero-shot classification among fixed class names: `ZeroShotClassifier`.

A thin subclass of the one zero-shot learner, `fewshot.learners.zeroshot.ZeroShot`, whose
classes are given once, at construction: class embedding = `fewshot.zeroshot.prompts.text_prototypes`
(the normalised mean of the normalised embeddings of the class's prompts, one per template);
logits = ``logit_scale * cos(image, class)`` (the CLIP recipe, as open_clip's zero-shot
classifier). It is of kind ``FIXED``: it predicts its own classes and needs no support set.
This module adds the class-name parsing and the class-embeddings file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from fewshot.errors import CheckpointError, FewshotError
from fewshot.learners.base import FIXED
from fewshot.learners.zeroshot import ZeroShot
from fewshot.zeroshot.prompts import check_class_names, text_prototypes
from fewshot.zeroshot.templates import load_templates

__all__ = ["CLASS_EMBEDDINGS_FORMAT", "ZeroShotClassifier", "check_class_names", "parse_class_names"]

CLASS_EMBEDDINGS_FORMAT = "fewshot-class-embeddings"


def parse_class_names(
    labels: str | None = None, labels_file: str | os.PathLike[str] | None = None
) -> list[str]:
    """Class names from ``"cat,dog,bird"`` or a file with one name per line (``#`` comments)."""
    if (labels is None) == (labels_file is None):
        raise FewshotError("give the classes with either --labels 'a,b,c' or --labels-file FILE")
    if labels is not None:
        return check_class_names([n for n in labels.split(",") if n.strip()] or [""])
    path = Path(labels_file).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise FewshotError(f"cannot read labels file {path}: {err}") from err
    return check_class_names([ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")] or [""])


class ZeroShotClassifier(ZeroShot):
    """Classify images among `class_names` from text alone.

    Args:
        encoder: a `ClipEncoder` (anything with ``encode``, ``encode_text`` and ``logit_scale``).
        class_names: the C classes, in output order.
        templates: a template-set name (``simple``, ``imagenet``, ``photo``, ``name``), a file,
            or a list of strings with one ``{}`` each.
        scale: logit scale; None uses the encoder's learned ``logit_scale``.

    ``fit()`` embeds the prompts: ``prototypes_`` ``(C, d)`` normalised. ``logits(x)``:
    images ``(M, 3, H, W)`` -> ``(M, C)``; ``logits_embeddings(z)``: ``(M, d)`` -> ``(M, C)``;
    ``proba_embeddings(z)``: ``(M, d)`` -> probabilities ``(M, C)``.
    """

    kind = FIXED
    uses_class_names = False  # its classes are its own, not an episode's
    fit_signature = "fit()"

    def __init__(
        self,
        encoder,
        class_names: list[str] | tuple[str, ...],
        templates: str | list[str] | tuple[str, ...] | None = "simple",
        scale: float | None = None,
    ) -> None:
        names = check_class_names(class_names)
        if len(names) < 2:
            raise FewshotError(
                f"only one class name ({names[0]!r}): zero-shot classification needs at least "
                "2 (with one, every image gets probability 1.0)"
            )
        super().__init__(encoder, load_templates(templates), scale)
        self.class_names = names
        self.class_names_ = names

    def class_embeddings(self) -> torch.Tensor:
        """``(C, d)``: per class, the normalised mean of its normalised prompt embeddings."""
        return text_prototypes(self.encoder, self.class_names, self.templates)

    def fit(self, support_x: torch.Tensor | None = None, support_y: torch.Tensor | None = None):
        """Embed the class prompts (support items are not used: this is zero-shot). Returns self."""
        self.prototypes_ = self.class_embeddings()
        return self

    def logits(self, query_x: torch.Tensor) -> torch.Tensor:
        """Logits ``(M, C)`` of preprocessed images ``(M, 3, H, W)``."""
        return self.logits_embeddings(self.encoder.encode(query_x))

    def _encoder_identity(self) -> dict:
        config = getattr(self.encoder, "config", dict)()
        pretrained = getattr(self.encoder, "pretrained", None)
        if pretrained and Path(pretrained).is_file():
            pretrained = Path(pretrained).name  # the same weights wherever the package is installed
        return {"model": config.get("model"), "pretrained": pretrained}

    def save_class_embeddings(self, path: str | os.PathLike[str]) -> Path:
        """Write ``prototypes_`` ``(C, d)`` with class names, templates and model (safetensors, atomic)."""
        from safetensors.torch import save

        from fewshot.checkpoints import atomic_write_bytes

        self._check_fitted("prototypes_")
        meta = {
            "format": CLASS_EMBEDDINGS_FORMAT,
            **self.config(),
            **self._encoder_identity(),
        }
        payload = save(
            {"class_embeddings": self.prototypes_.detach().float().cpu().contiguous()},
            metadata={"fewshot": json.dumps(meta)},
        )
        return atomic_write_bytes(path, payload)

    @classmethod
    def from_class_embeddings(cls, encoder, path: str | os.PathLike[str]) -> ZeroShotClassifier:
        """A fitted classifier from a file written by `save_class_embeddings` for the same model.

        Raises:
            CheckpointError: unreadable file, or made with another model or embedding size.
        """
        from safetensors import SafetensorError
        from safetensors.torch import safe_open

        path = Path(path).expanduser()
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = json.loads((handle.metadata() or {})["fewshot"])
                prototypes = handle.get_tensor("class_embeddings")
        except (OSError, SafetensorError, KeyError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable class-embeddings file: {err}") from err
        if meta.get("format") != CLASS_EMBEDDINGS_FORMAT:
            raise CheckpointError(f"{path} is not a fewshot class-embeddings file")
        self = cls(encoder, meta["class_names"], meta["templates"], meta.get("scale"))
        mine = self._encoder_identity()
        theirs = {"model": meta.get("model"), "pretrained": meta.get("pretrained")}
        if mine != theirs or prototypes.shape != (len(self.class_names), encoder.embed_dim):
            raise CheckpointError(
                f"{path} was made with {theirs['model']} ({theirs['pretrained']}), "
                f"not {mine['model']} ({mine['pretrained']}): rebuild it with this model"
            )
        self.prototypes_ = prototypes.float()
        return self
