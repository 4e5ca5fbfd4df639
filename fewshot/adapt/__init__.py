"""Domain adaptation: align a source-trained model with unlabelled target data (issue #16).

One method per module, each a class decorated ``@ADAPTERS.register("name")`` (found without
importing it, as the learners are):

- on frozen features of any encoder (`FeatureAdapter`): ``coral``, ``subspace`` (subspace
  alignment), ``ot`` (optimal-transport mapping, POT);
- on networks with a new head (`NetworkAdapter`): ``adabn``, ``dann``, ``cdan``, ``cdan-e``,
  ``mcc``, ``self-training``, ``fixmatch``.

`fewshot.adapt.selection` scores a model on unlabelled target data (entropy, information
maximisation, SND) to choose hyperparameters and checkpoints without target labels;
`fewshot.adapt.run.adapt` runs a method inside the run machinery (`fewshot.run_loop`);
`fewshot.adapt.estimator.DomainAdapter` wraps it in the learners' fit/predict shape.
"""

from __future__ import annotations

from typing import Any

from fewshot.registry import Registry

ADAPTERS: Registry = Registry("adaptation method")
# every `@ADAPTERS.register("name")` class of this package, found without importing it
ADAPTERS.discover(__name__, "ADAPTERS.register")


def create_adapter(name: str, **params: Any):
    """Build the adaptation method registered as `name` with its hyperparameters."""
    return ADAPTERS.get(name)(**params)


__all__ = ["ADAPTERS", "create_adapter"]
