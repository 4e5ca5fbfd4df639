"""Continual learning: streams of experiences (`scenarios`), strategies that learn them one by
one (one file each, listed in the `STRATEGIES` registry), the trainer on the run machinery
(`trainer`), the metrics of the accuracy matrix (`metrics`)."""

from __future__ import annotations

from fewshot.registry import Registry

STRATEGIES: Registry = Registry("strategy")
# every `@STRATEGIES.register("name")` class of this package, found without importing it
STRATEGIES.discover(__name__, "STRATEGIES.register")

__all__ = ["STRATEGIES"]
