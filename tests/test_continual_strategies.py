"""Continual strategies on a tiny synthetic stream: naive forgets, replay and SimpleCIL forget
much less, EWC's penalty, the replay memory, the registry and same seed -> same numbers."""

from __future__ import annotations

import pytest
import torch
from continual_streams import encoder, squares

from fewshot.continual import STRATEGIES
from fewshot.continual.base import TrainSettings
from fewshot.continual.buffer import ReplayBuffer
from fewshot.continual.ewc import EWC
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import class_incremental, task_incremental
from fewshot.continual.trainer import ContinualRun, train_continual
from fewshot.errors import FewshotError
from fewshot.workflows.continual import build_strategy

SETTINGS = TrainSettings(epochs=4, lr=0.05, batch_size=8)


def run(name: str, scenario=class_incremental, seed: int = 0, **options) -> dict:
    stream = scenario(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    task = ContinualRun(stream, STRATEGIES.get(name)(**options), encoder(seed), SETTINGS, seed=seed)
    return train_continual(task, None, {}, progress=False)


@pytest.fixture(scope="module")
def naive():
    return run("naive")


def test_every_strategy_is_registered():
    expected = {
        "naive",
        "joint",
        "ewc",
        "mas",
        "lwf",
        "replay",
        "gdumb",
        "multihead",
        "expandable",
        "simplecil",
    }
    assert expected <= set(STRATEGIES.names())


def test_naive_learns_each_task_then_forgets_the_first(naive):
    R = naive["accuracy_matrix"]
    assert R[0][0] >= 0.9  # it learned task 1 ...
    assert R[2][0] <= 0.2  # ... and forgot it
    assert naive["metrics"]["average_forgetting"] >= 0.7


def test_replay_forgets_much_less_than_naive(naive):
    replay = run("replay", memory=24)
    assert replay["accuracy_matrix"][2][0] >= naive["accuracy_matrix"][2][0] + 0.5
    assert replay["metrics"]["average_forgetting"] <= naive["metrics"]["average_forgetting"] - 0.5
    ace = run("replay", memory=24, ace=True)
    assert ace["metrics"]["average_accuracy"] >= naive["metrics"]["average_accuracy"] + 0.3


def test_simplecil_never_forgets_what_its_prototypes_separate(naive):
    result = run("simplecil")
    assert result["metrics"]["average_forgetting"] <= 0.1
    assert result["metrics"]["average_accuracy"] >= naive["metrics"]["average_accuracy"] + 0.4


def test_joint_training_is_the_upper_bound(naive):
    assert run("joint")["metrics"]["average_accuracy"] >= 0.95


def test_multihead_in_task_incremental_keeps_old_tasks():
    result = run("multihead", task_incremental)
    assert result["metrics"]["average_accuracy"] >= 0.9


def test_the_same_seed_gives_the_same_numbers_and_another_seed_others(naive):
    assert run("naive")["accuracy_matrix"] == naive["accuracy_matrix"]
    lwf = run("lwf", seed=1)
    assert lwf["accuracy_matrix"] == run("lwf", seed=1)["accuracy_matrix"]


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_away_from_it():
    torch.manual_seed(0)
    model = ContinualModel(encoder(), 6)
    stream = class_incremental(squares(6, 8, 0), squares(6, 2, 1), 3, seed=0)
    ewc = EWC(ewc_lambda=10.0)
    ewc.train_experience(model, stream.experiences[0], TrainSettings(epochs=1, lr=0.01), torch.Generator())
    assert float(torch.as_tensor(ewc.penalty(model)).detach()) == pytest.approx(0.0, abs=1e-12)
    assert sum(float(f.sum()) for f in ewc.fishers[0].values()) > 0
    penalties = []
    for step in (0.01, 0.1, 1.0):
        moved = ContinualModel(encoder(), 6)
        moved.rebuild(model.structure())
        moved.load_state_dict(model.state_dict())
        with torch.no_grad():
            for p in moved.parameters():
                p.add_(step)
        penalties.append(float(torch.as_tensor(ewc.penalty(moved)).detach()))
    assert 0 < penalties[0] < penalties[1] < penalties[2]
    # quadratic: ten times the step, a hundred times the penalty
    assert penalties[1] / penalties[0] == pytest.approx(100, rel=1e-3)


def test_online_ewc_keeps_one_decayed_fisher():
    torch.manual_seed(0)
    model = ContinualModel(encoder(), 6)
    stream = class_incremental(squares(6, 8, 0), squares(6, 2, 1), 3, seed=0)
    ewc = EWC(online=True, decay=0.5)
    for exp in stream.experiences[:2]:
        ewc.train_experience(model, exp, TrainSettings(epochs=1, lr=0.01), torch.Generator())
    assert len(ewc.fishers) == len(ewc.anchors) == 1


def test_the_buffer_never_exceeds_its_memory_and_stays_class_balanced():
    stream = class_incremental(squares(6, 20, 0), squares(6, 2, 1), 3, seed=0)
    g = torch.Generator().manual_seed(0)
    balanced, reservoir = ReplayBuffer(10, "class-balanced"), ReplayBuffer(10, "reservoir")
    for k, exp in enumerate(stream.experiences):
        balanced.update(exp.train, g)
        reservoir.update(exp.train, g)
        assert len(balanced) <= 10 and len(reservoir) <= 10
        counts = torch.bincount(balanced.labels, minlength=6)
        seen = counts[torch.tensor([c for e in stream.experiences[: k + 1] for c in e.classes])]
        assert int(seen.max() - seen.min()) <= 1 and int(seen.sum()) == 10
    assert balanced.items.dtype == torch.uint8  # stored compactly: 1 byte a pixel
    assert balanced.nbytes() == 10 * 16 * 16
    x, _ = balanced.data().data, None
    assert torch.all((x >= 0) & (x <= 1))


def test_reservoir_keeps_a_uniform_sample_of_the_stream():
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for trial in range(200):
        buffer = ReplayBuffer(8, "reservoir")
        for c in range(4):
            data = squares(4, 10, trial)
            keep = data.labels == c
            data.data, data.labels = data.data[keep], data.labels[keep]
            buffer.update(data, g)
        counts += torch.bincount(buffer.labels, minlength=4)
    share = counts / counts.sum()
    assert torch.all((share - 0.25).abs() < 0.04)  # the first class is not favoured


def test_a_strategy_refuses_an_option_it_does_not_take_and_a_scenario_it_cannot_serve():
    with pytest.raises(FewshotError, match="--memory does not apply to the ewc strategy"):
        build_strategy("ewc", {"memory": 10})
    with pytest.raises(FewshotError, match="needs --scenario task-il"):
        build_strategy("multihead", {}, "class-il")
    with pytest.raises(FewshotError, match="unknown --strategy"):
        build_strategy("nope")
    assert build_strategy("replay", {"memory": 7, "alpha": None}).memory == 7


def test_mas_importance_is_capped_where_sgd_on_its_penalty_would_diverge():
    from fewshot.continual.mas import MAS

    strong = MAS(mas_lambda=1e4)  # uncapped, SGD at lr 0.05 on this penalty would blow up
    stream = class_incremental(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    task = ContinualRun(stream, strong, encoder(0), SETTINGS, seed=0)
    result = train_continual(task, None, {}, progress=False)
    limit = 1 / (2 * SETTINGS.lr * strong.mas_lambda)
    assert max(float(v.max()) for v in strong.importance.values()) <= limit * (1 + 1e-6)  # float32
    assert any(float(v.max()) == pytest.approx(limit) for v in strong.importance.values())  # the cap bit
    assert all(torch.isfinite(v).all() for v in strong.anchor.values())
    assert result["accuracy_matrix"][-1][-1] >= 0.5  # still learns the last task (chance: 1/6)
