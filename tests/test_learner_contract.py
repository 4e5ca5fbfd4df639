"""The learner contract, checked for every registered learner, plus ProtoNet specifics."""

from __future__ import annotations

import json

import pytest
import torch

from fewshot.encoders import create_encoder
from fewshot.errors import NotFittedError
from fewshot.learners import LEARNERS, create_learner
from fewshot.learners.protonet import ProtoNet
from fewshot.sampling import EpisodeSampler

WAYS, SHOTS, QUERIES = 3, 2, 4


def small_encoder():
    torch.manual_seed(0)
    return create_encoder("conv4", in_channels=1, hidden=8, image_size=28)


def episode(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(WAYS * 10, 1, 28, 28, generator=g)
    labels = torch.arange(WAYS).repeat_interleave(10)
    sampler = EpisodeSampler(labels, WAYS, SHOTS, QUERIES, episodes=1, seed=seed)
    return next(sampler.episodes(images))


@pytest.fixture(params=LEARNERS.names())
def learner(request):
    cls = LEARNERS.get(request.param)
    if getattr(cls, "fixed_classes", False) or getattr(cls, "uses_class_names", False):
        # Fixed-class classifiers and text-prompted learners (need class names and a CLIP
        # encoder) have their own tests: tests/test_transfer_learners.py.
        pytest.skip(f"{request.param} is not an image-only episodic learner")
    return create_learner(request.param, small_encoder())


def test_fit_returns_self(learner):
    ep = episode()
    assert learner.fit(ep.support_x, ep.support_y) is learner


def test_predict_before_fit_raises_not_fitted(learner):
    ep = episode()
    with pytest.raises(NotFittedError, match="fit"):
        learner.predict(ep.query_x)
    with pytest.raises(NotFittedError):
        learner.predict_proba(ep.query_x)


def test_predict_proba_rows_sum_to_one(learner):
    ep = episode()
    proba = learner.fit(ep.support_x, ep.support_y).predict_proba(ep.query_x)
    assert proba.shape == (WAYS * QUERIES, WAYS)
    assert (proba >= 0).all()
    torch.testing.assert_close(proba.sum(1), torch.ones(WAYS * QUERIES))
    predictions = learner.predict(ep.query_x)
    assert predictions.shape == (WAYS * QUERIES,)
    torch.testing.assert_close(predictions, proba.argmax(1))


def test_config_is_json_and_rebuilds(learner):
    config = json.loads(json.dumps(learner.config()))
    rebuilt = type(learner)(small_encoder(), **config)
    assert rebuilt.config() == config


def test_episode_loss_gradients_reach_the_encoder(learner):
    ep = episode()
    learner.train()
    try:
        loss, accuracy = learner.episode_loss(ep)
    except NotImplementedError:
        pytest.skip(f"{type(learner).__name__} is not meta-trainable")
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert 0.0 <= float(accuracy) <= 1.0
    loss.backward()
    grads = [p.grad for p in learner.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


# -- ProtoNet specifics ---------------------------------------------------------------------


def test_cosine_metric_scores_scaled_cosine_similarity():
    torch.manual_seed(1)
    from fewshot.encoders.base import IdentityEncoder

    support = torch.randn(6, 5)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    queries = torch.randn(4, 5)
    learner = ProtoNet(IdentityEncoder(5), metric="cosine", scale=10.0).fit(support, labels)
    prototypes = torch.stack([support[labels == c].mean(0) for c in range(3)])
    expected = 10.0 * torch.nn.functional.cosine_similarity(
        queries[:, None, :], prototypes[None, :, :], dim=-1
    )
    torch.testing.assert_close(learner.logits(queries), expected)
    # scaling a query does not change its cosine prediction
    torch.testing.assert_close(learner.predict(queries * 7.5), learner.predict(queries))


def test_euclidean_metric_is_negative_squared_distance():
    from fewshot.encoders.base import IdentityEncoder

    support = torch.tensor([[0.0, 0.0], [4.0, 0.0]])
    learner = ProtoNet(IdentityEncoder(2)).fit(support, torch.tensor([0, 1]))
    logits = learner.logits(torch.tensor([[1.0, 1.0]]))
    torch.testing.assert_close(logits, torch.tensor([[-2.0, -10.0]]))


def test_cached_path_matches_raw_path():
    ep = episode(3)
    learner = ProtoNet(small_encoder()).eval()
    raw = learner.fit(ep.support_x, ep.support_y).logits(ep.query_x)
    z_support, z_query = learner.encoder.encode(ep.support_x), learner.encoder.encode(ep.query_x)
    cached = learner.fit_embeddings(z_support, ep.support_y).logits_embeddings(z_query)
    torch.testing.assert_close(cached, raw)
    batched = learner.batch_logits_embeddings(
        z_support.view(1, WAYS, SHOTS, -1), z_query.view(1, WAYS * QUERIES, -1)
    )
    torch.testing.assert_close(batched[0], raw, rtol=1e-4, atol=1e-4)


def test_fit_does_not_track_gradients():
    ep = episode()
    learner = ProtoNet(small_encoder()).fit(ep.support_x, ep.support_y)
    assert not learner.prototypes_.requires_grad
