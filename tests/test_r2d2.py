"""R2-D2's ridge-regression head: the closed form, the batched path, meta-training and the CLI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from meta_learners import (
    assert_checkpoint_round_trip,
    assert_loss_falls,
    loss_curve,
    tiny_conv4,
    tiny_episode,
    train_then_eval,
)

from fewshot.encoders.base import IdentityEncoder
from fewshot.learners import LEARNERS
from fewshot.learners.r2d2 import R2D2

pytestmark = pytest.mark.usefixtures("one_thread")


def test_woodbury_solution_equals_the_direct_ridge_solve():
    """W = X^T (X X^T + lam I)^-1 Y (n x n) equals (X^T X + lam I)^-1 X^T Y (d x d), bias column included."""
    g = torch.Generator().manual_seed(0)
    support, queries = (
        torch.randn(6, 10, generator=g, dtype=torch.float64),
        torch.randn(4, 10, dtype=torch.float64),
    )
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    learner = R2D2(IdentityEncoder(10), init_lambda=0.7, init_scale=2.0)
    with torch.no_grad():
        learner.bias.fill_(0.25)
    x = torch.cat([support, torch.ones(6, 1, dtype=torch.float64)], 1)
    y = F.one_hot(labels, 3).double()
    direct = torch.linalg.solve(x.T @ x + 0.7 * torch.eye(11, dtype=torch.float64), x.T @ y)
    expected = 2.0 * torch.cat([queries, torch.ones(4, 1, dtype=torch.float64)], 1) @ direct + 0.25
    got = learner.fit(support.float(), labels).logits(queries.float())
    torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-4)


def test_a_tiny_penalty_interpolates_the_support_labels():
    g = torch.Generator().manual_seed(1)
    support = torch.randn(6, 20, generator=g)
    labels = torch.tensor([2, 0, 1, 0, 2, 1])
    learner = R2D2(IdentityEncoder(20), init_lambda=1e-6).fit(support, labels)
    torch.testing.assert_close(learner.logits(support), F.one_hot(labels, 3).float(), atol=1e-3, rtol=0)


def test_batched_episodes_match_one_at_a_time_and_queries_are_scored_alone():
    g = torch.Generator().manual_seed(2)
    support, queries = torch.randn(3, 4, 2, 6, generator=g), torch.randn(3, 5, 6, generator=g)
    learner = R2D2(IdentityEncoder(6))
    batched = learner.batch_logits_embeddings(support, queries)
    assert batched.shape == (3, 5, 4)
    for i in range(3):
        learner.fit_embeddings(support[i].reshape(8, 6), torch.arange(4).repeat_interleave(2))
        torch.testing.assert_close(batched[i], learner.logits_embeddings(queries[i]), rtol=1e-4, atol=1e-5)
        # inductive: a query's logits do not depend on the other queries
        torch.testing.assert_close(
            learner.logits_embeddings(queries[i][:1]), learner.logits_embeddings(queries[i])[:1]
        )


def test_episode_loss_is_the_query_cross_entropy_and_reaches_lambda_scale_and_encoder():
    learner = R2D2(tiny_conv4())
    episode = tiny_episode()
    loss, accuracy = learner.episode_loss(episode)
    learner.eval()
    logits = learner.fit(episode.support_x, episode.support_y).logits(episode.query_x)
    learner.train()
    assert loss.ndim == 0 and 0 <= float(accuracy) <= 1
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (learner.log_lambda, learner.scale))
    assert logits.shape == (9, 3)


def test_meta_training_lowers_the_loss_and_same_seed_same_weights():
    curves, weights = [], []
    for _ in range(2):
        learner = R2D2(tiny_conv4(seed=3))
        curves.append(loss_curve(learner, steps=40))
        weights.append({k: v.clone() for k, v in learner.state_dict().items()})
    assert curves[0] == curves[1]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)
    assert_loss_falls(curves[0])


def test_checkpoint_round_trip(tmp_path):
    learner = R2D2(tiny_conv4(), init_lambda=0.5, learn_lambda=False, init_scale=3.0)
    with torch.no_grad():
        learner.scale.fill_(4.5)
    assert_checkpoint_round_trip(learner, "r2d2", tmp_path, tiny_episode(4))


def test_declared_on_the_contract():
    cls = LEARNERS.get("r2d2")
    assert cls is R2D2 and cls.kind == "embedding" and cls.meta_trainable and not cls.transductive
    assert cls.batches_embeddings and cls.default_train_ways == 60


def test_fewshot_train_method_r2d2_and_eval_reloads_it(tmp_path, monkeypatch):
    trained, evaluated, library = train_then_eval(tmp_path, monkeypatch, "r2d2")
    assert trained["best_val_accuracy"] is not None
    assert evaluated["method"] == "r2d2" and evaluated["accuracy"] == pytest.approx(library, abs=1e-9)
