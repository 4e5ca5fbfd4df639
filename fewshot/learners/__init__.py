"""Few-shot learners, one algorithm per file, listed in the `LEARNERS` registry.

Every learner takes an encoder as its first argument and follows the contract in
`fewshot.learners.base.FewShotLearner`.
"""

from __future__ import annotations

from typing import Any

from fewshot.registry import Registry

LEARNERS: Registry = Registry("method")
LEARNERS.register("protonet", "fewshot.learners.protonet:ProtoNet")
LEARNERS.register("maml", "fewshot.learners.maml:MAML")
LEARNERS.register("fomaml", "fewshot.learners.maml:FirstOrderMAML")
LEARNERS.register("anil", "fewshot.learners.maml:ANIL")
LEARNERS.register("simpleshot", "fewshot.learners.simpleshot:SimpleShot")
LEARNERS.register("linear-probe", "fewshot.learners.linear_probe:LinearProbe")
LEARNERS.register("finetune", "fewshot.learners.finetune:Finetune")
LEARNERS.register("classifier", "fewshot.learners.classifier:Classifier")
LEARNERS.register("zeroshot", "fewshot.learners.zeroshot:ZeroShot")
LEARNERS.register("tip-adapter", "fewshot.learners.tip_adapter:TipAdapter")
LEARNERS.register("tip-adapter-f", "fewshot.learners.tip_adapter:TipAdapterF")
LEARNERS.register("matching", "fewshot.learners.matching:MatchingNet")


def create_learner(name: str, encoder: Any, **kwargs: Any):
    """Build the learner registered as `name` around `encoder`."""
    return LEARNERS.get(name)(encoder, **kwargs)


__all__ = ["LEARNERS", "create_learner"]
