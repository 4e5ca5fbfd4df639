"""Transferability scores: rank pretrained encoders on a target before fine-tuning (issue #18).

One score per module, each a `TransferScore` subclass registered as
``@SCORES.register("name")`` (found by reading the modules, so listing names imports
nothing): ``logme``, ``leep``, ``nce``, ``hscore``, ``hscore-shrinkage``, ``transrate``.
Every score is "higher is better" and is computed on the target's labelled training set:
features ``(n, d)`` from the candidate encoder, labels ``(n,)`` and, for scores that need
them (LEEP, NCE), the source model's class probabilities ``(n, s)``.

    >>> from fewshot.transfer.scores import compute_score
    >>> compute_score("logme", features, labels)            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from fewshot.registry import Registry

SCORES: Registry = Registry("transferability score")
SCORES.discover(__name__, "SCORES.register")


def score_names() -> list[str]:
    """Every registered score name; imports nothing."""
    return SCORES.names()


def get_score(name: str) -> Any:
    """An instance of the score registered as ``name`` (unknown names: one line listing them)."""
    return SCORES.get(name)()


def compute_score(name: str, features: Any, labels: Any, source_probs: Any = None) -> float:
    """The score ``name`` of ``features`` ``(n, d)`` for ``labels`` ``(n,)`` (and the source
    model's probabilities ``(n, s)`` for scores with ``needs_source``)."""
    return get_score(name)(features, labels, source_probs)


__all__ = ["SCORES", "compute_score", "get_score", "score_names"]
