"""FEAT: set-to-set adaptation of the prototypes, its contrastive regulariser, training and the CLI."""

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
from fewshot.learners.feat import FEAT

pytestmark = pytest.mark.usefixtures("one_thread")


def fitted(seed: int = 0, dim: int = 6, **kwargs):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    support, queries = torch.randn(8, dim, generator=g), torch.randn(5, dim, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return FEAT(IdentityEncoder(dim), **kwargs).eval(), support, labels, queries


def test_without_the_attention_output_the_prototypes_are_only_layer_normalised():
    """The residual path: with FC = 0 the adapted prototypes are LayerNorm(class means)."""
    learner, support, labels, queries = fitted(temperature=2.0)
    with torch.no_grad():
        learner.attention.out.weight.zero_()
        learner.attention.out.bias.zero_()
    means = torch.stack([support[labels == c].mean(0) for c in range(4)])
    expected = -torch.cdist(queries, F.layer_norm(means, (6,))).pow(2) / 2.0
    torch.testing.assert_close(learner.fit(support, labels).logits(queries), expected, rtol=1e-4, atol=1e-5)


def test_the_adaptation_is_a_set_to_set_function():
    """Permuting the classes permutes the logits' columns; the attention does change the prototypes."""
    learner, support, labels, queries = fitted(1)
    logits = learner.fit(support, labels).logits(queries)
    order = torch.tensor([2, 0, 3, 1])  # class c becomes order[c]
    permuted = learner.fit(support, order[labels]).logits(queries)
    torch.testing.assert_close(permuted[:, order], logits)
    means = torch.stack([support[labels == c].mean(0) for c in range(4)])
    assert (learner.fit(support, labels).prototypes_ - F.layer_norm(means, (6,))).abs().max() > 1e-3


def test_batched_episodes_match_one_at_a_time_and_queries_are_scored_alone():
    learner, *_ = fitted(2)
    g = torch.Generator().manual_seed(2)
    support, queries = torch.randn(3, 4, 2, 6, generator=g), torch.randn(3, 5, 6, generator=g)
    batched = learner.batch_logits_embeddings(support, queries)
    for i in range(3):
        learner.fit_embeddings(support[i].reshape(8, 6), torch.arange(4).repeat_interleave(2))
        torch.testing.assert_close(batched[i], learner.logits_embeddings(queries[i]), rtol=1e-4, atol=1e-5)
        alone = learner.logits_embeddings(queries[i][2:3])
        torch.testing.assert_close(alone, learner.logits_embeddings(queries[i])[2:3])


def test_the_contrastive_regulariser_adds_balance_times_its_loss():
    episode = tiny_episode(1)
    losses = {}
    for balance in (0.0, 0.5):
        learner = FEAT(tiny_conv4(seed=5), balance=balance).eval()  # eval: no dropout
        losses[balance] = learner.episode_loss(episode)[0]
        logits = learner.fit(episode.support_x, episode.support_y).logits(episode.query_x)
        plain = F.cross_entropy(logits, episode.query_y)
    torch.testing.assert_close(losses[0.0], plain)
    z = learner.encoder(torch.cat([episode.support_x, episode.query_x]))
    extra = learner.contrastive_loss(z, torch.cat([episode.support_y, episode.query_y]), episode.ways)
    assert extra > 0
    torch.testing.assert_close(losses[0.5], plain + 0.5 * extra)


def test_meta_training_lowers_the_loss_and_same_seed_same_weights():
    curves, weights = [], []
    for _ in range(2):
        learner = FEAT(tiny_conv4(seed=3))
        curves.append(loss_curve(learner, steps=40))
        weights.append({k: v.clone() for k, v in learner.state_dict().items()})
    assert curves[0] == curves[1]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)
    assert_loss_falls(curves[0])


def test_checkpoint_round_trip(tmp_path):
    learner = FEAT(tiny_conv4(), temperature=8.0, balance=0.1)
    assert_checkpoint_round_trip(learner, "feat", tmp_path, tiny_episode(4))


def test_declared_on_the_contract():
    cls = LEARNERS.get("feat")
    assert cls is FEAT and cls.kind == "embedding" and cls.meta_trainable and not cls.transductive
    assert cls.batches_embeddings and cls.default_train_ways == 5


def test_fewshot_train_method_feat_and_eval_reloads_it(tmp_path, monkeypatch):
    trained, evaluated, library = train_then_eval(tmp_path, monkeypatch, "feat")
    assert trained["best_val_accuracy"] is not None
    assert evaluated["method"] == "feat" and evaluated["accuracy"] == pytest.approx(library, abs=1e-9)
