"""Reptile: the meta-update is the interpolation towards the adapted weights, through the
training loop's hooks; MAML's inner loop; training, checkpoints and the CLI."""

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
from fewshot.learners.base import ADAPTIVE
from fewshot.learners.reptile import Reptile
from fewshot.sampling import Episode

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_episode(seed: int) -> Episode:
    g = torch.Generator().manual_seed(seed)
    support, query = torch.randn(6, 4, generator=g), torch.randn(3, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return Episode(support, labels, query, torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7]))


def sgd_adapted(weight, bias, episode: Episode, lr: float, steps: int):
    """A linear classifier adapted by plain SGD on the support cross-entropy, written out by hand."""
    w, b = weight.detach().clone(), bias.detach().clone()
    for _ in range(steps):
        w.requires_grad_(), b.requires_grad_()
        loss = F.cross_entropy(episode.support_x @ w.T + b, episode.support_y)
        gw, gb = torch.autograd.grad(loss, [w, b])
        w, b = (w - lr * gw).detach(), (b - lr * gb).detach()
    return w, b


def test_the_meta_update_is_the_interpolation_towards_the_adapted_weights():
    """theta' = theta + eps * (mean_i phi_i - theta): `meta_batch_backward`, then SGD with lr eps."""
    torch.manual_seed(0)
    learner = Reptile(IdentityEncoder(4), ways=3, inner_lr=0.5, inner_steps=3)
    episodes = [toy_episode(1), toy_episode(2)]
    theta = {n: p.detach().clone() for n, p in learner.meta_parameters().items()}
    adapted = [sgd_adapted(theta["head.weight"], theta["head.bias"], e, 0.5, 3) for e in episodes]
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.3)
    optimizer.zero_grad()
    loss, accuracy = learner.meta_batch_backward(episodes)
    optimizer.step()
    for i, name in enumerate(("head.weight", "head.bias")):
        target = torch.stack([phi[i] for phi in adapted]).mean(0)
        expected = theta[name] + 0.3 * (target - theta[name])
        torch.testing.assert_close(learner.meta_parameters()[name].detach(), expected)
    # the reported loss is the adapted weights' query loss
    queries = [
        F.cross_entropy(e.query_x @ w.T + b, e.query_y) for e, (w, b) in zip(episodes, adapted, strict=True)
    ]
    assert loss == pytest.approx(float(sum(queries) / 2), rel=1e-5)
    assert 0 <= accuracy <= 1


def test_episode_loss_backward_gives_the_reptile_direction_and_fit_keeps_the_weights():
    torch.manual_seed(0)
    learner = Reptile(IdentityEncoder(4), ways=3, inner_lr=0.5, inner_steps=2)
    episode = toy_episode(3)
    before = {n: p.detach().clone() for n, p in learner.meta_parameters().items()}
    w, b = sgd_adapted(before["head.weight"], before["head.bias"], episode, 0.5, 2)
    loss, _ = learner.episode_loss(episode)
    loss.backward()
    torch.testing.assert_close(learner.head.weight.grad, before["head.weight"] - w)
    torch.testing.assert_close(learner.head.bias.grad, before["head.bias"] - b)
    learner.fit(episode.support_x, episode.support_y)  # test-time adaptation: 50 steps on a copy
    for name, value in learner.meta_parameters().items():
        torch.testing.assert_close(value.detach(), before[name], rtol=0, atol=0)
    w50, b50 = sgd_adapted(before["head.weight"], before["head.bias"], episode, 0.5, 50)
    torch.testing.assert_close(learner.logits(episode.query_x), episode.query_x @ w50.T + b50)


def test_meta_training_lowers_the_loss_and_same_seed_same_weights():
    curves, weights = [], []
    for _ in range(2):
        learner = Reptile(tiny_conv4(seed=3), ways=3, test_inner_steps=5)
        curves.append(loss_curve(learner, steps=40))
        weights.append({k: v.clone() for k, v in learner.state_dict().items()})
    assert curves[0] == curves[1]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=0, atol=0)
    assert_loss_falls(curves[0])


def test_checkpoint_round_trip(tmp_path):
    learner = Reptile(tiny_conv4(), ways=4, inner_lr=0.2, test_inner_steps=3)
    assert_checkpoint_round_trip(learner, "reptile", tmp_path, tiny_episode(4))


def test_declared_on_the_contract():
    cls = LEARNERS.get("reptile")
    assert cls is Reptile and cls.kind == ADAPTIVE and cls.meta_trainable and cls.runs_meta_batch
    assert cls.transductive  # BatchNorm over the task's queries, the paper's transduction setting
    assert cls.param_names() == ["ways", "inner_lr", "inner_steps", "test_inner_steps", "strategy"]
    assert Reptile(tiny_conv4()).train_defaults() == {"meta_batch": 5, "lr_step": 0}


def test_fewshot_train_method_reptile_and_eval_reloads_it(tmp_path, monkeypatch):
    extra = ("--meta-batch", "2", "--inner-steps", "2", "--test-inner-steps", "3")
    trained, evaluated, library = train_then_eval(tmp_path, monkeypatch, "reptile", *extra)
    assert trained["best_val_accuracy"] is not None
    assert evaluated["method"] == "reptile" and evaluated["accuracy"] == pytest.approx(library, abs=1e-9)
