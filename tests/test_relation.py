"""Relation Networks: pairs of feature maps, the MSE objective, the batched path, training and the CLI."""

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

import fewshot.learners.relation as relation
from fewshot.encoders.base import IdentityEncoder
from fewshot.learners import LEARNERS
from fewshot.learners.relation import RelationNet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_module_scores_the_concatenated_feature_maps_of_summed_shots():
    """Conv-4 at 32x32 has 2x2 maps: the relation module sees [sum of a class's support maps,
    the query's map] stacked on the channels, read from the encoder's conv blocks themselves."""
    encoder = tiny_conv4(side=32).eval()
    assert encoder.feature_shape == (8, 2, 2)
    learner = RelationNet(encoder, channels=6, hidden=4).eval()
    episode = tiny_episode(0, side=32)
    logits = learner.fit(episode.support_x, episode.support_y).logits(episode.query_x)
    with torch.no_grad():
        support_maps, query_maps = encoder.blocks(episode.support_x), encoder.blocks(episode.query_x)
        for c in range(3):
            class_map = support_maps[episode.support_y == c].sum(0, keepdim=True)
            pairs = torch.cat([class_map.expand(len(query_maps), -1, -1, -1), query_maps], 1)
            torch.testing.assert_close(logits[:, c], learner.relation(pairs)[:, 0], rtol=1e-4, atol=1e-5)


def test_episode_loss_is_the_mse_of_the_relation_scores_to_one_hot_labels():
    learner = RelationNet(tiny_conv4(), channels=6).eval()
    episode = tiny_episode(1)
    loss, accuracy = learner.episode_loss(episode)
    logits = learner.fit(episode.support_x, episode.support_y).logits(episode.query_x)
    expected = ((torch.sigmoid(logits) - F.one_hot(episode.query_y, 3)) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    assert float(accuracy) == float((logits.argmax(-1) == episode.query_y).float().mean())


@pytest.mark.parametrize("aggregate", ["sum", "mean"])
def test_batched_episodes_match_one_at_a_time_and_queries_are_scored_alone(aggregate, monkeypatch):
    monkeypatch.setattr(relation, "PAIR_ELEMENTS", 300)  # several chunks of episodes
    torch.manual_seed(0)
    learner = RelationNet(IdentityEncoder(6), channels=5, aggregate=aggregate).eval()
    g = torch.Generator().manual_seed(2)
    support, queries = torch.randn(3, 4, 2, 6, generator=g), torch.randn(3, 5, 6, generator=g)
    batched = learner.batch_logits_embeddings(support, queries)
    assert batched.shape == (3, 5, 4)
    for i in range(3):
        learner.fit_embeddings(support[i].reshape(8, 6), torch.arange(4).repeat_interleave(2))
        torch.testing.assert_close(batched[i], learner.logits_embeddings(queries[i]), rtol=1e-4, atol=1e-5)
        alone = learner.logits_embeddings(queries[i][3:4])
        torch.testing.assert_close(alone, learner.logits_embeddings(queries[i])[3:4], rtol=1e-5, atol=1e-6)


def test_sum_and_mean_pooling_agree_for_one_shot():
    torch.manual_seed(0)
    summed = RelationNet(IdentityEncoder(4)).eval()
    averaged = RelationNet(IdentityEncoder(4), aggregate="mean").eval()
    averaged.load_state_dict(summed.state_dict())
    support, queries = torch.randn(3, 4), torch.randn(2, 4)
    torch.testing.assert_close(
        summed.fit(support, [0, 1, 2]).logits(queries), averaged.fit(support, [0, 1, 2]).logits(queries)
    )


def test_meta_training_lowers_the_loss_and_same_seed_same_weights():
    curves, weights = [], []
    for _ in range(2):
        learner = RelationNet(tiny_conv4(seed=3))
        curves.append(loss_curve(learner, steps=40))
        weights.append({k: v.clone() for k, v in learner.state_dict().items()})
    assert curves[0] == curves[1]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)
    assert_loss_falls(curves[0])


def test_checkpoint_round_trip(tmp_path):
    learner = RelationNet(tiny_conv4(), channels=6, hidden=3, aggregate="mean")
    learner.train()
    learner.episode_loss(tiny_episode(2))  # BatchNorm running statistics move away from their start
    assert_checkpoint_round_trip(learner, "relation", tmp_path, tiny_episode(4))


def test_declared_on_the_contract():
    cls = LEARNERS.get("relation")
    assert cls is RelationNet and cls.kind == "embedding" and cls.meta_trainable and not cls.transductive
    assert cls.batches_embeddings and cls.default_train_ways == 5
    assert LEARNERS.get("relation").param_choices() == {"aggregate": ("sum", "mean")}


def test_fewshot_train_method_relation_and_eval_reloads_it(tmp_path, monkeypatch):
    trained, evaluated, library = train_then_eval(tmp_path, monkeypatch, "relation")
    assert trained["best_val_accuracy"] is not None
    assert evaluated["method"] == "relation" and evaluated["accuracy"] == pytest.approx(library, abs=1e-9)


@pytest.mark.parametrize("batched", [False, True])
def test_a_model_trained_at_k_shots_pools_any_support_on_the_trained_scale(batched):
    """``train_shots`` set: a class of K' maps pools as ``train_shots`` x their mean (the sum at
    the training K); unset: the plain sum (the paper's), which grows with K'."""
    episode = tiny_episode(5, shots=4)
    z = torch.randn(len(episode.support_y), 6)
    plain = RelationNet(IdentityEncoder(6), channels=5).eval()
    one_shot = RelationNet(IdentityEncoder(6), channels=5, train_shots=1).eval()
    one_shot.load_state_dict(plain.state_dict())
    means = torch.stack([z[episode.support_y == c].mean(0) for c in range(3)])
    if batched:
        grouped = torch.stack([z[episode.support_y == c] for c in range(3)]).unsqueeze(0)  # (1, N, K, d)
        queries = torch.randn(1, 2, 6)
        got = one_shot.batch_logits_embeddings(grouped, queries)
        torch.testing.assert_close(got, one_shot.relation_logits(means.unsqueeze(0), queries))
        summed = plain.relation_logits(4 * means.unsqueeze(0), queries)
        torch.testing.assert_close(plain.batch_logits_embeddings(grouped, queries), summed)
    else:
        torch.testing.assert_close(one_shot._fit_embeddings(z, episode.support_y).classes_z_, means)
        torch.testing.assert_close(plain._fit_embeddings(z, episode.support_y).classes_z_, 4 * means)


def test_fewshot_train_records_the_training_shots(tmp_path, monkeypatch):
    from fewshot.model_loading import load_learner

    train_then_eval(tmp_path, monkeypatch, "relation", "--shots", "2")
    learner, meta = load_learner(tmp_path / "relation.safetensors")
    assert learner.train_shots == 2 and meta["learner_config"]["train_shots"] == 2
    mean_pooled = RelationNet(IdentityEncoder(4), aggregate="mean")
    mean_pooled.record_training(type("Config", (), {"shots": 3})())
    assert mean_pooled.train_shots is None  # the mean needs no scale
