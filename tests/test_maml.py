"""MAML, first-order MAML and ANIL: meta-gradients of every strategy against a plain reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot.encoders.conv4 import Conv4
from fewshot.errors import FewshotError, NotFittedError
from fewshot.learners import LEARNERS
from fewshot.learners.maml import ANIL, MAML, STRATEGIES, FirstOrderMAML
from fewshot.sampling import Episode

SIDE = 16  # 16x16 inputs: Conv-4 ends at 1x1


def tiny_learner(cls=MAML, seed: int = 0, **kwargs) -> MAML:
    torch.manual_seed(seed)
    learner = cls(Conv4(in_channels=1, hidden=4, image_size=SIDE), ways=3, **kwargs)
    return learner.double()


def episodes(count: int = 3, ways: int = 3, shots: int = 2, queries: int = 4, seed: int = 0) -> list[Episode]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        # Class-dependent images so that adapting can help.
        means = torch.rand(ways, 1, 1, SIDE, SIDE, generator=g, dtype=torch.float64)
        support = means.repeat_interleave(shots, 0) + 0.3 * torch.rand(
            ways * shots, 1, 1, SIDE, SIDE, generator=g, dtype=torch.float64
        )
        query = means.repeat_interleave(queries, 0) + 0.3 * torch.rand(
            ways * queries, 1, 1, SIDE, SIDE, generator=g, dtype=torch.float64
        )
        out.append(
            Episode(
                support.squeeze(1),
                torch.arange(ways).repeat_interleave(shots),
                query.squeeze(1),
                torch.arange(ways).repeat_interleave(queries),
                torch.arange(ways),
            )
        )
    return out


def reference_meta_gradient(
    learner: MAML, tasks: list[Episode], steps: int, first_order: bool, head_only: bool
):
    """A plain per-task loop: functional_call + autograd.grad(create_graph=True)."""
    params = learner.meta_parameters()
    names = [n for n in params if n.startswith("head.")] if head_only else list(params)
    total = 0.0
    for task in tasks:
        fast = dict(params)
        for _ in range(steps):
            loss = F.cross_entropy(
                torch.func.functional_call(learner, fast, (task.support_x,)), task.support_y
            )
            grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=not first_order)
            for n, g in zip(names, grads, strict=True):
                lr = learner.inner_lrs[n.replace(".", "__")] if learner.learn_inner_lr else learner.inner_lr
                fast[n] = fast[n] - lr * g
        total = total + F.cross_entropy(
            torch.func.functional_call(learner, fast, (task.query_x,)), task.query_y
        )
    meta_loss = total / len(tasks)
    return meta_loss, torch.autograd.grad(meta_loss, list(learner.parameters()))


def meta_gradient(learner: MAML, tasks: list[Episode]):
    loss, _ = learner.meta_batch_loss(tasks)
    return loss, torch.autograd.grad(loss, list(learner.parameters()))


CASES = [
    pytest.param(MAML, {}, id="maml"),
    pytest.param(MAML, {"inner_steps": 2}, id="maml-2steps"),
    pytest.param(FirstOrderMAML, {"inner_steps": 2}, id="fomaml"),
    pytest.param(ANIL, {"inner_steps": 2}, id="anil"),
    pytest.param(ANIL, {"inner_steps": 2, "first_order": True}, id="anil-first-order"),
    pytest.param(MAML, {"learn_inner_lr": True, "inner_steps": 2}, id="meta-sgd"),
]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_meta_gradient_matches_reference(cls, kwargs, strategy):
    learner = tiny_learner(cls, strategy=strategy, inner_lr=0.3, **kwargs)
    tasks = episodes()
    ref_loss, ref_grads = reference_meta_gradient(
        learner, tasks, learner.inner_steps, learner.first_order, learner.head_only
    )
    loss, grads = meta_gradient(learner, tasks)
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=0)
    for (name, _), g, ref in zip(learner.named_parameters(), grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-5, msg=f"{strategy}: {name}")
    # The training loop's entry point (per-task backward for `loop`) accumulates the same gradient.
    learner.zero_grad(set_to_none=True)
    loss_value, accuracy = learner.meta_batch_backward(tasks)
    assert loss_value == pytest.approx(ref_loss.item(), abs=1e-6) and 0.0 <= accuracy <= 1.0
    for (name, p), ref in zip(learner.named_parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, ref, atol=1e-5, rtol=1e-5, msg=f"backward {strategy}: {name}")


def test_strategies_agree_in_float32():
    tasks = [
        Episode(e.support_x.float(), e.support_y, e.query_x.float(), e.query_y, e.class_ids)
        for e in episodes()
    ]
    results = {}
    for strategy in STRATEGIES:
        learner = tiny_learner(strategy=strategy).float()
        results[strategy] = meta_gradient(learner, tasks)[1]
    for strategy in ("vmap", "grouped"):
        for g, ref in zip(results[strategy], results["loop"], strict=True):
            torch.testing.assert_close(g, ref, atol=1e-5, rtol=1e-4)


def test_first_order_drops_the_second_order_term():
    tasks = episodes()
    second = tiny_learner(MAML, strategy="loop", inner_steps=2)
    first = tiny_learner(FirstOrderMAML, strategy="loop", inner_steps=2)
    _, g2 = meta_gradient(second, tasks)
    _, g1 = meta_gradient(first, tasks)
    # Conv weights: the second-order term is not negligible, so the gradients differ...
    assert (g2[0] - g1[0]).abs().max() > 1e-6
    # ...and the first-order gradient is the query-loss gradient at the adapted parameters.
    learner = tiny_learner(MAML, inner_steps=2)
    params = learner.meta_parameters()
    total = 0.0
    for task in tasks:
        fast = {n: p.detach().requires_grad_() for n, p in params.items()}
        for _ in range(2):
            loss = F.cross_entropy(
                torch.func.functional_call(learner, fast, (task.support_x,)), task.support_y
            )
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {
                n: (p - 0.4 * g).detach().requires_grad_()
                for (n, p), g in zip(fast.items(), grads, strict=True)
            }
        query_loss = F.cross_entropy(torch.func.functional_call(learner, fast, (task.query_x,)), task.query_y)
        grads = torch.autograd.grad(query_loss, list(fast.values()))
        total = (
            [g / len(tasks) for g in grads]
            if isinstance(total, float)
            else [t + g / len(tasks) for t, g in zip(total, grads, strict=True)]
        )
    for g, ref in zip(g1, total, strict=True):
        torch.testing.assert_close(g, ref, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("cls", [MAML, ANIL])
def test_adaptation_lowers_the_support_loss_and_keeps_meta_parameters(cls):
    learner = tiny_learner(cls, test_inner_steps=5, inner_lr=0.1)
    task = episodes(1)[0]
    before = {n: p.detach().clone() for n, p in learner.state_dict().items()}
    with torch.no_grad():
        loss_before = F.cross_entropy(learner(task.support_x), task.support_y)
    learner.fit(task.support_x, task.support_y)
    loss_after = F.cross_entropy(learner.logits(task.support_x), task.support_y)
    assert loss_after < loss_before - 1e-3
    for n, p in learner.state_dict().items():
        assert torch.equal(p, before[n]), n
    adapted_names = [n for n in learner.adapted_ if not torch.equal(learner.adapted_[n], before[n])]
    if cls is ANIL:
        assert adapted_names == ["head.weight", "head.bias"]
    else:
        assert any(n.startswith("encoder.") for n in adapted_names)


def test_predict_contract_and_smaller_episodes():
    learner = tiny_learner()
    task = episodes(1)[0]
    with pytest.raises(NotFittedError):
        learner.predict(task.query_x)
    predictions = learner.fit(task.support_x, task.support_y).predict(task.query_x)
    assert predictions.shape == (task.query_x.shape[0],)
    # A 2-way task on a 3-way head uses the first two outputs.
    two = task.support_y < 2
    learner.fit(task.support_x[two], task.support_y[two])
    assert learner.predict_proba(task.query_x).shape == (task.query_x.shape[0], 2)
    with pytest.raises(FewshotError, match="3-way head"):
        learner.fit(task.support_x, torch.arange(task.support_y.numel()) % 4)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_batched_episode_predictions_match_fit_predict(strategy):
    learner = tiny_learner(strategy=strategy)
    tasks = episodes(3)
    stacked = [torch.stack([getattr(t, k) for t in tasks]) for k in ("support_x", "support_y", "query_x")]
    batched = learner.batch_episode_predictions(*stacked)
    for i, task in enumerate(tasks):
        assert torch.equal(batched[i], learner.fit(task.support_x, task.support_y).predict(task.query_x))


def test_registry_config_round_trip_and_errors():
    learner = tiny_learner(ANIL, learn_inner_lr=True)
    rebuilt = LEARNERS.get("anil")(Conv4(in_channels=1, hidden=4, image_size=SIDE), **learner.config())
    rebuilt.load_state_dict(learner.float().state_dict(), strict=True)
    assert rebuilt.head_only and rebuilt.learn_inner_lr
    assert LEARNERS.get("fomaml")(Conv4(), ways=20).config()["inner_lr"] == 0.1
    with pytest.raises(FewshotError, match="strategy"):
        MAML(Conv4(), strategy="fast")
    with pytest.raises(FewshotError, match="Conv-4"):
        from fewshot.encoders.base import IdentityEncoder

        MAML(IdentityEncoder(8), strategy="grouped").meta_batch_loss(
            [Episode(torch.rand(2, 8), torch.arange(2), torch.rand(2, 8), torch.arange(2), torch.arange(2))]
        )


def synthetic_images(n_classes: int = 8, per_class: int = 6, seed: int = 0):
    from fewshot.data.tensors import LabeledTensors

    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n_classes, 1, SIDE, SIDE, generator=g)
    data = means.repeat_interleave(per_class, 0) + 0.2 * torch.rand(
        n_classes * per_class, 1, SIDE, SIDE, generator=g
    )
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return LabeledTensors(data, labels, [f"c{i}" for i in range(n_classes)], {"dataset": "synthetic"})


def test_training_loop_checkpoint_and_evaluation(tmp_path):
    from fewshot.checkpoints import learner_metadata, load_learner
    from fewshot.evaluation import evaluate
    from fewshot.training import TrainConfig, train

    torch.manual_seed(0)
    learner = FirstOrderMAML(Conv4(in_channels=1, hidden=4, image_size=SIDE), ways=3, strategy="grouped")
    before = {n: p.detach().clone() for n, p in learner.state_dict().items()}
    data = synthetic_images()
    config = TrainConfig(
        ways=3,
        shots=1,
        queries=2,
        steps=3,
        meta_batch=4,
        lr_step=0,
        val_ways=3,
        val_queries=2,
        val_episodes=4,
        val_every=3,
    )
    out = tmp_path / "maml.safetensors"
    result = train(
        learner,
        data,
        out,
        config,
        val_data=data,
        metadata=learner_metadata("fomaml", "conv4", learner),
        progress=False,
    )
    assert result.steps_done == 3 and out.exists()
    assert any(not torch.equal(p, before[n]) for n, p in learner.state_dict().items())
    loaded, meta = load_learner(out)
    assert isinstance(loaded, FirstOrderMAML) and loaded.config() == learner.config()
    for n, p in loaded.state_dict().items():
        torch.testing.assert_close(p, learner.state_dict()[n])
    a = evaluate(loaded, data, ways=3, shots=1, queries=2, episodes=6, progress=False)
    loaded.strategy = "loop"
    b = evaluate(loaded, data, ways=2, shots=1, queries=2, episodes=6, progress=False)
    assert a.n_episodes == 6 and b.n_episodes == 6 and 0 <= a.mean <= 1
    with pytest.raises(FewshotError, match="3-way head"):
        evaluate(loaded, data, ways=4, shots=1, queries=2, episodes=2, progress=False)


def test_cli_refuses_maml_options_for_other_methods():
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    for option in (["--inner-lr", "0.1"], ["--first-order"], ["--strategy", "vmap"], ["--inner-steps", "2"]):
        result = CliRunner().invoke(app, ["train", "--method", "protonet", *option])
        assert result.exit_code == 2
        assert f"{option[0]} does not apply to protonet" in result.output
