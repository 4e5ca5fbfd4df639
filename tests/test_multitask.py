"""Multi-task learning: task sampling, loss weighting, the shared encoder's gradients, the
shared model against one model per task, and the fit/predict API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from continual_streams import squares

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError, NotFittedError
from fewshot.multitask.estimator import MultiTaskLearner, compare_with_single_task
from fewshot.multitask.model import MultiTaskModel
from fewshot.multitask.run import MultiTaskRun, Task
from fewshot.multitask.sampling import TaskBatches, task_probabilities
from fewshot.multitask.training import MultiTaskSettings, MultiTaskTraining
from fewshot.multitask.weighting import LossWeighting


def encoder(seed: int = 0):
    """A small Conv-4 (8 channels, 16 px): every test here trains in about a second."""
    from fewshot.encoders.conv4 import Conv4

    torch.manual_seed(seed)
    return Conv4(in_channels=1, hidden=8, image_size=16)


def part(data: LabeledTensors, keep: list[int]) -> LabeledTensors:
    """The items of classes `keep`, relabelled ``0..len(keep)-1``."""
    mask = torch.isin(data.labels, torch.tensor(keep))
    remap = torch.full((data.n_classes,), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    return LabeledTensors(data.data[mask], remap[data.labels[mask]], [f"c{c}" for c in keep])


def two_tasks(per_class: int = 16) -> list[Task]:
    train, test = squares(6, per_class, 0), squares(6, 8, 1)
    return [Task(n, part(train, k), part(test, k)) for n, k in (("a", [0, 1, 2]), ("b", [3, 4, 5]))]


def test_task_probabilities_are_proportional_to_the_sizes_or_uniform():
    assert task_probabilities([100, 300], "proportional") == pytest.approx([0.25, 0.75])
    assert task_probabilities([100, 300], "uniform") == pytest.approx([0.5, 0.5])


def test_proportional_sampling_draws_tasks_by_size_and_uniform_equally():
    def counts(sampling: str) -> np.ndarray:
        batches = TaskBatches([100, 300], sampling, 4, torch.Generator().manual_seed(0))
        for _ in range(2000):
            for t in batches.step_tasks():
                batches.next_batch(t)
        return np.asarray(batches.draws) / 4000

    assert counts("proportional") == pytest.approx([0.25, 0.75], abs=0.03)
    assert counts("uniform") == pytest.approx([0.5, 0.5], abs=0.03)


def test_a_task_batches_cover_a_whole_pass_before_any_item_repeats():
    batches = TaskBatches([10, 7], "uniform", 3, torch.Generator().manual_seed(1))
    seen = torch.cat([batches.next_batch(1) for _ in range(2)])  # 6 of 7 items
    assert len(set(seen.tolist())) == 6
    again = TaskBatches([10, 7], "uniform", 3, torch.Generator().manual_seed(1))
    assert torch.equal(torch.cat([again.next_batch(1) for _ in range(2)]), seen)  # same seed


def test_the_losses_add_up_with_fixed_weights_or_uncertainty():
    losses = {0: torch.tensor(2.0), 1: torch.tensor(8.0)}
    assert float(LossWeighting(2, "fixed", [1.0, 0.5])(losses)) == pytest.approx(2.0 + 4.0)
    assert float(LossWeighting(2)({1: torch.tensor(8.0)})) == pytest.approx(8.0)  # only the drawn tasks
    uncertain = LossWeighting(2, "uncertainty")
    with torch.no_grad():
        uncertain.log_vars.copy_(torch.tensor([0.0, np.log(4.0)]))
    assert float(uncertain(losses).detach()) == pytest.approx(2.0 + 8.0 / 4.0 + np.log(4.0))
    assert uncertain.task_weights() == pytest.approx([1.0, 0.25])


def test_uncertainty_trains_s_on_the_papers_loss_and_the_network_on_weights_of_mean_one():
    net = torch.tensor([2.0, 8.0], requires_grad=True)  # stands for the network: L_t = net_t
    uncertain = LossWeighting(2, "uncertainty")
    with torch.no_grad():
        uncertain.log_vars.copy_(torch.tensor([np.log(0.01), np.log(4.0)]))  # weights 100, 0.25
    uncertain({0: net[0], 1: net[1]}).backward()
    weights = np.array([100.0, 0.25])
    torch.testing.assert_close(net.grad, torch.tensor(weights / weights.mean(), dtype=torch.float32))
    expected = 1 - weights * np.array([2.0, 8.0])  # d/ds (exp(-s) L + s)
    torch.testing.assert_close(uncertain.log_vars.grad, torch.tensor(expected, dtype=torch.float32))


def test_the_shared_encoder_gets_the_gradient_of_every_task():
    tasks = two_tasks(4)
    model = MultiTaskModel(encoder(), [3, 3], LossWeighting(2, "fixed", [1.0, 3.0]))
    first = next(model.encoder.parameters())

    def grad(losses_of: list[int]) -> torch.Tensor:
        model.zero_grad()
        losses = {t: F.cross_entropy(model(tasks[t].train.data, t), tasks[t].train.labels) for t in losses_of}
        model.weighting(losses).backward()
        return first.grad.clone()

    g0, g1, both = grad([0]), grad([1]), grad([0, 1])
    assert g0.abs().sum() > 0 and g1.abs().sum() > 0 and not torch.allclose(g0, g1)
    assert torch.allclose(both, g0 + g1, atol=1e-5)  # weights applied: g1 is 3x task b's gradient
    assert model.heads[1].weight.grad.abs().sum() > 0


def test_uncertainty_weights_are_learned_and_weigh_a_noisy_task_down():
    train = squares(6, 16, 0)
    clean = part(train, [0, 1, 2])
    noisy = part(train, [3, 4, 5])
    noisy.labels = torch.randint(0, 3, noisy.labels.shape, generator=torch.Generator().manual_seed(0))
    settings = MultiTaskSettings(
        steps=40, batch_size=16, lr=0.05, sampling="uniform", weighting="uncertainty"
    )
    training = MultiTaskTraining(encoder(), [clean, noisy], settings, seed=0)
    training.train_steps(settings.steps)
    weights = training.model.weighting.task_weights()
    assert weights != [1.0, 1.0]
    assert weights[1] < weights[0]  # the random-label task's loss stays high: a smaller weight


def test_the_shared_model_learns_every_task_and_is_compared_with_one_model_per_task():
    settings = MultiTaskSettings(steps=30, batch_size=8, lr=0.05, sampling="uniform", eval_every=10)
    run = MultiTaskRun(encoder(), two_tasks(), settings, seed=0)
    assert run.total == 9  # 3 rounds of each of 3 models
    from fewshot.multitask.saving import train_multitask

    report = train_multitask(run, None, {}, progress=False)
    assert [t["name"] for t in report["tasks"]] == ["a", "b"]
    assert min(t["shared_accuracy"] for t in report["tasks"]) >= 0.9
    assert min(t["single_accuracy"] for t in report["tasks"]) >= 0.9
    assert sum(t["batches"] for t in report["tasks"]) == 60  # 30 steps of 2 drawn tasks
    assert report["shared"]["seconds"] > 0 and report["single"]["seconds"] > 0
    again = train_multitask(MultiTaskRun(encoder(), two_tasks(), settings, seed=0), None, {}, progress=False)
    for r in (report, again):
        r["shared"].pop("seconds"), r["single"].pop("seconds")
    assert again == report  # same seed, same numbers


def test_the_learner_api_fits_predicts_labels_and_exports_a_classifier():
    tasks = two_tasks()
    xs = [t.train.data for t in tasks]
    ys = [t.train.labels * 10 + 5 for t in tasks]  # labels 5, 15, 25: predictions use them
    learner = MultiTaskLearner(encoder(), steps=25, batch_size=8, lr=0.05, sampling="uniform")
    with pytest.raises(NotFittedError):
        learner.predict(xs[0], 0)
    assert learner.fit(xs, ys) is learner
    assert learner.classes_[1].tolist() == [5, 15, 25]
    assert set(learner.predict(tasks[1].test.data, 1).tolist()) <= {5, 15, 25}
    scores = learner.score([t.test.data for t in tasks], [t.test.labels * 10 + 5 for t in tasks])
    assert min(scores) >= 0.9
    assert sum(learner.batches_) == 50 and learner.get_params()["steps"] == 25
    probe = learner.classifier(1)
    assert torch.equal(
        probe.logits(tasks[1].test.data).argmax(-1), learner.logits(tasks[1].test.data, 1).argmax(-1)
    )


def test_compare_with_single_task_reports_both_models():
    tasks = two_tasks(8)
    train = ([t.train.data for t in tasks], [t.train.labels for t in tasks])
    test = ([t.test.data for t in tasks], [t.test.labels for t in tasks])
    report = compare_with_single_task(encoder(), train, test, baseline_steps=5, steps=5, batch_size=8)
    assert report["baseline_steps"] == 5 and all(t["single_accuracy"] is not None for t in report["tasks"])


def test_bad_settings_are_refused_in_one_line_naming_the_option():
    cases = [
        (MultiTaskSettings(weights=[1.0]), "--weights: give one per task"),
        (MultiTaskSettings(weights=[1.0, 1.0], weighting="uncertainty"), "--weighting fixed"),
        (MultiTaskSettings(weights=[0.0, 0.0]), "not all 0"),
        (MultiTaskSettings(sampling="greedy"), "--sampling"),
        (MultiTaskSettings(weighting="gradnorm"), "--weighting"),
        (MultiTaskSettings(steps=0), "--steps"),
    ]
    for settings, fragment in cases:
        with pytest.raises(FewshotError, match=fragment):
            settings.check(2)
