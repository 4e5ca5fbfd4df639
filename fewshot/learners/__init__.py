"""Few-shot learners, one algorithm per file, listed in the `LEARNERS` registry.

Every learner takes an encoder as its first argument and follows the contract in
`fewshot.learners.base.FewShotLearner`.
"""

from __future__ import annotations

from typing import Any

from fewshot.registry import Registry

LEARNERS: Registry = Registry("method")
# every `@LEARNERS.register("name")` class of this package, found without importing it
LEARNERS.discover(__name__, "LEARNERS.register")


def create_learner(name: str, encoder: Any, **kwargs: Any):
    """Build the learner registered as `name` around `encoder`."""
    return LEARNERS.get(name)(encoder, **kwargs)


__all__ = ["LEARNERS", "create_learner"]
