"""Choose between adapted models of different methods without target labels.

`fewshot adapt` chooses a checkpoint or a hyperparameter inside one method by a per-model
validator (IM by default). Between methods those validators are not comparable (see
`fewshot.adapt.selection`), so `rank_models` ranks a set of candidates (the source-only
model among them, so that "do not adapt" can win) by their agreement with the candidates'
ensemble (EnsV) and reports every per-model validator beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fewshot.adapt.selection import agreement_scores, scores
from fewshot.adapt.trainer import accuracy_of, target_probabilities
from fewshot.errors import FewshotError


def rank_probabilities(
    probabilities: Mapping[str, torch.Tensor], labels: torch.Tensor | None = None
) -> list[dict]:
    """One row per candidate, best agreement first: ``name``, ``agreement``, every validator's
    ``scores`` and ``accuracy`` (None without ``labels``, which are never used to rank).

    Args:
        probabilities: candidate name -> its target probabilities ``(n, C)``, same ``n`` and ``C``.
        labels: ``(n,)`` target labels, only to report accuracy.
    """
    names = list(probabilities)
    agreement = agreement_scores([probabilities[name] for name in names])
    rows = [
        {
            "name": name,
            "agreement": round(value, 6),
            "scores": {k: round(v, 6) for k, v in scores(probabilities[name]).items()},
            "accuracy": accuracy_of(probabilities[name], labels),
        }
        for name, value in zip(names, agreement, strict=True)
    ]
    # ties keep the given order, so a tie with a candidate listed first (source-only) goes to it
    return sorted(rows, key=lambda row: -row["agreement"])


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
) -> list[dict]:
    """`rank_probabilities` of fixed-class classifiers (``Classifier``) on target ``items``
    ``(n, ...)``; every model must predict the same classes in the same order."""
    check_same_classes({name: list(getattr(m, "class_names", []) or []) for name, m in models.items()})
    probabilities = {name: target_probabilities(m, items, device) for name, m in models.items()}
    return rank_probabilities(probabilities, labels)


__all__ = ["check_same_classes", "rank_models", "rank_probabilities"]
