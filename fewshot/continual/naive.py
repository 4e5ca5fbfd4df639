"""Naive fine-tuning: train on each experience in turn with nothing to protect the old ones;
the lower bound every other strategy should beat."""

from __future__ import annotations

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy


@STRATEGIES.register("naive")
class Naive(Strategy):
    """Cross-entropy on the current experience over every class seen so far (`Strategy`)."""
