"""Choose between adapted models of different methods without target labels.

`fewshot adapt` chooses a checkpoint or a hyperparameter inside one method by a per-model
validator (IM by default). Between methods those validators are not comparable (see
`fewshot.adapt.selection`), so `rank_probabilities` ranks a set of candidates (the source-only
model among them, so that "do not adapt" can win) by reverse validation in a shared
representation when labelled source items are given (`fewshot.adapt.reverse`), else by
their agreement with the candidates' ensemble (EnsV), and reports every validator beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fewshot.adapt.reverse import pixel_representation, reverse_scores
from fewshot.adapt.selection import agreement_scores, scores
from fewshot.adapt.trainer import accuracy_of, target_probabilities
from fewshot.errors import FewshotError


def rank_probabilities(
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor | None = None,
    reverse: Mapping[str, float] | None = None,
) -> list[dict]:
    """One row per candidate, best first: ``name``, ``reverse`` (None without it), ``agreement``,
    every validator's ``scores`` and ``accuracy`` (None without ``labels``, never used to rank).

    Args:
        probabilities: candidate name -> its target probabilities ``(n, C)``, same ``n`` and ``C``.
        labels: ``(n,)`` target labels, only to report accuracy.
        reverse: candidate name -> its reverse-validation score (`fewshot.adapt.reverse`): the
            ranking when given, else the agreement.
    """
    names = list(probabilities)
    agreement = agreement_scores([probabilities[name] for name in names])
    rows = [
        {
            "name": name,
            "reverse": None if reverse is None else round(reverse[name], 6),
            "agreement": round(value, 6),
            "scores": {k: round(v, 6) for k, v in scores(probabilities[name]).items()},
            "accuracy": accuracy_of(probabilities[name], labels),
        }
        for name, value in zip(names, agreement, strict=True)
    ]
    key = "agreement" if reverse is None else "reverse"
    # ties keep the given order, so a tie with a candidate listed first (source-only) goes to it
    return sorted(rows, key=lambda row: -row[key])


def check_same_classes(classes: Mapping[str, list[str]]) -> list[str]:
    """The classes every candidate (name -> its class names, in head order) predicts; refuses
    candidates of other classes than the first."""
    first = None
    for name, names in classes.items():
        if first is not None and list(names) != first:
            raise FewshotError(
                f"{name} predicts other classes than the first model: the candidates must share "
                "their classes (adapted from the same source)"
            )
        first = list(names)
    return first or []


def rank_models(
    models: Mapping[str, torch.nn.Module],
    items: torch.Tensor,
    labels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    source: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[dict]:
    """`rank_probabilities` of fixed-class classifiers (``Classifier``) on target image ``items``
    ``(n, C, H, W)``; every model must predict the same classes in the same order. ``source``:
    labelled source images and labels ``((m, C', H', W'), (m,))``, to rank by reverse
    validation in pixels."""
    check_same_classes({name: list(getattr(m, "class_names", []) or []) for name, m in models.items()})
    probabilities = {name: target_probabilities(m, items, device) for name, m in models.items()}
    reverse = None if source is None else pixel_reverse(probabilities, items, *source)
    return rank_probabilities(probabilities, labels, reverse)


def pixel_reverse(
    probabilities: Mapping[str, torch.Tensor],
    target_items: torch.Tensor,
    source_items: torch.Tensor,
    source_labels: torch.Tensor,
) -> dict[str, float]:
    """`reverse_scores` of each candidate's predicted classes, in the images' own pixels."""
    labels = {name: p.argmax(-1) for name, p in probabilities.items()}
    target_z, source_z = pixel_representation(target_items), pixel_representation(source_items)
    return reverse_scores(labels, target_z, source_z, source_labels)


__all__ = ["check_same_classes", "pixel_reverse", "rank_models", "rank_probabilities"]
