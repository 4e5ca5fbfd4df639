"""Class names and templates -> CLIP text prototypes: the one recipe zero-shot, Tip-Adapter and
labelling share.

Per class, every template is filled with the class name and embedded; the prototype is the mean
of the L2-normalised prompt embeddings, normalised again (open_clip's
``build_zero_shot_classifier``). This module imports no learner, so `fewshot.learners` and
`fewshot.zeroshot.classifier` both build on it without importing each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.errors import FewshotError
from fewshot.zeroshot.templates import fill, load_templates


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """Stripped class names; raises on none, empty or duplicate names."""
    names = [str(n).strip() for n in class_names]
    if not names:
        raise FewshotError("no class names given")
    if any(not n for n in names):
        raise FewshotError("class names must not be empty")
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})
    if duplicates:
        raise FewshotError(f"duplicate class names: {', '.join(duplicates)}")
    return names


def check_text_encoder(encoder: Any) -> None:
    """Raise `FewshotError` unless `encoder` has a text tower (``encode_text``)."""
    if not hasattr(encoder, "encode_text"):
        raise FewshotError(
            f"{type(encoder).__name__} has no text tower: zero-shot methods need a CLIP "
            "encoder (--encoder clip)"
        )


@torch.no_grad()
def text_prototypes(
    encoder: Any, class_names: Sequence[str], templates: str | list[str] | tuple[str, ...] | None = "simple"
) -> torch.Tensor:
    """``(C, d)`` float32 prototypes of `class_names`, in order, each of unit norm.

    Args:
        encoder: anything with ``encode_text(list[str]) -> (n, d)`` returning L2-normalised rows
            (as `ClipEncoder` does; normalising them again would move the last bits of every
            probability, so this does not).
        class_names: the C class names (used as given: check them with `check_class_names`).
        templates: a template-set name, a file, or a list of strings with one ``{}`` each
            (see `fewshot.zeroshot.templates.load_templates`).
    """
    check_text_encoder(encoder)
    templates = load_templates(
        templates if templates is None or isinstance(templates, str) else list(templates)
    )
    names = list(class_names)
    prompts = [fill(t, name) for name in names for t in templates]
    z = encoder.encode_text(prompts).float()  # rows already of unit norm (encode_text's contract)
    z = z.reshape(len(names), len(templates), -1).mean(1)
    return F.normalize(z, dim=-1)
