"""Tip-Adapter's cache model alone (``text=False``): runs on an image-only encoder without class
names, its logits are the cache term only, its blend is still chosen on the support set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot.encoders.base import IdentityEncoder
from fewshot.errors import FewshotError
from fewshot.learners import create_learner
from fewshot.learners.tip_adapter import cache_logits


def _task(ways: int = 4, shots: int = 3, queries: int = 5, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(ways, dim, generator=g)
    labels = torch.arange(ways)
    support = means.repeat_interleave(shots, 0) + torch.randn(ways * shots, dim, generator=g)
    query = means.repeat_interleave(queries, 0) + torch.randn(ways * queries, dim, generator=g)
    return support, labels.repeat_interleave(shots) + 10, query, labels.repeat_interleave(queries) + 10


@pytest.mark.parametrize("name", ["tip-adapter", "tip-adapter-f"])
def test_cache_only_needs_no_text_and_no_class_names(name):
    support, labels, query, query_labels = _task()
    learner = create_learner(name, IdentityEncoder(16), text=False).fit(support, labels)
    assert learner.prototypes_ is None and learner.alpha_ > 0
    features = F.normalize(query, dim=-1)
    expected = learner.alpha_ * cache_logits(features, learner.keys_, learner.values_, learner.beta_)
    torch.testing.assert_close(learner.logits(query), expected)
    assert (learner.predict(query) == query_labels).float().mean() > 0.9
    assert set(learner.classes_.tolist()) == {10, 11, 12, 13}


def test_with_text_it_still_needs_the_class_names():
    support, labels, _, _ = _task()
    with pytest.raises(FewshotError, match="class names"):
        create_learner("tip-adapter", IdentityEncoder(16)).fit(support, labels)


def test_cache_only_through_evaluate_on_frozen_embeddings():
    from fewshot.data.tensors import LabeledTensors
    from fewshot.evaluation import evaluate

    support, labels, query, query_labels = _task(shots=6, queries=6)
    items, targets = torch.cat([support, query]), torch.cat([labels, query_labels]) - 10
    data = LabeledTensors(items, targets, ["a", "b", "c", "d"])
    learner = create_learner("tip-adapter", IdentityEncoder(16), text=False)
    result = evaluate(learner, data, ways=3, shots=2, queries=4, episodes=5, device="cpu", progress=False)
    assert result.mean > 0.9
