"""The training loop: resume after interruption, early stopping, best checkpoint, logs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

import fewshot.training as training
from fewshot.checkpoints import learner_metadata, load_learner, read_checkpoint
from fewshot.data.tensors import LabeledTensors
from fewshot.encoders import create_encoder
from fewshot.encoders.base import Encoder
from fewshot.errors import CheckpointError
from fewshot.learners.protonet import ProtoNet
from fewshot.training import TrainConfig, train


def images(n_classes: int, per_class: int, seed: int, dataset: str = "synthetic") -> LabeledTensors:
    g = torch.Generator().manual_seed(seed)
    # each class: a fixed random pattern plus noise, so training has something to learn
    patterns = torch.rand(n_classes, 1, 28, 28, generator=g)
    data = patterns.repeat_interleave(per_class, 0) + 0.3 * torch.rand(
        n_classes * per_class, 1, 28, 28, generator=g
    )
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    names = [f"c{i}" for i in range(n_classes)]
    return LabeledTensors(data, labels, names, {"dataset": dataset, "image_size": 28})


@pytest.fixture(scope="module")
def data():
    return images(12, 8, seed=0), images(5, 8, seed=1)


def config(**overrides) -> TrainConfig:
    values = dict(
        ways=4,
        shots=1,
        queries=2,
        steps=12,
        val_every=4,
        val_ways=3,
        val_queries=3,
        val_episodes=4,
        lr_step=5,
        device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


def protonet() -> ProtoNet:
    torch.manual_seed(0)
    return ProtoNet(create_encoder("conv4", hidden=8))


class DropoutEncoder(Encoder):
    """An encoder that uses the global torch RNG while training (dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 16
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 16), nn.Dropout(0.5))

    def forward(self, x):
        return self.net(x)


def interrupt_at(learner, call: int) -> None:
    """Make the `call`-th training episode raise KeyboardInterrupt (a Ctrl-C mid-run)."""
    calls = {"n": 0}
    original = learner.episode_loss

    def episode_loss(episode):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(episode)

    learner.episode_loss = episode_loss


@pytest.mark.parametrize("make", [protonet, lambda: (torch.manual_seed(0), ProtoNet(DropoutEncoder()))[1]])
def test_resume_after_interruption_gives_the_uninterrupted_weights(tmp_path, data, make):
    train_data, val_data = data
    cfg = config()
    straight = make()
    train(straight, train_data, tmp_path / "a.safetensors", cfg, val_data=val_data, progress=False)

    interrupted = make()
    interrupt_at(interrupted, 7)  # after the state saved at step 4
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, train_data, tmp_path / "b.safetensors", cfg, val_data=val_data, progress=False)
    torch.manual_seed(123)  # the resumed process starts with other random state
    resumed = make()
    result = train(resumed, train_data, tmp_path / "b.safetensors", cfg, val_data=val_data, progress=False)

    assert result.steps_done == cfg.steps
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
    # the log holds each validation once, as the uninterrupted run's does
    with open(tmp_path / "a.safetensors.log.csv") as a, open(tmp_path / "b.safetensors.log.csv") as b:
        rows_a, rows_b = list(csv.reader(a)), list(csv.reader(b))
    assert [r[:5] for r in rows_b] == [r[:5] for r in rows_a]
    assert [r[0] for r in rows_a] == ["step", "4", "8", "12"]


def test_restart_ignores_old_state(tmp_path, data):
    train_data, val_data = data
    first = protonet()
    train(first, train_data, tmp_path / "m.safetensors", config(steps=4), val_data=val_data, progress=False)
    again = protonet()
    result = train(
        again,
        train_data,
        tmp_path / "m.safetensors",
        config(steps=4),
        val_data=val_data,
        progress=False,
        resume=False,
    )
    assert result.steps_done == 4
    for key, value in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def test_early_stopping_after_patience(tmp_path, data, monkeypatch):
    train_data, val_data = data
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.9, 0.9])
    monkeypatch.setattr(training, "_episode_accuracy", lambda *a, **k: next(scores))
    result = train(
        protonet(),
        train_data,
        tmp_path / "m.safetensors",
        config(steps=40, val_every=2, patience=2),
        val_data=val_data,
        progress=False,
    )
    assert result.stopped_early
    assert result.steps_done == 8  # validations at 2, 4 (best), 6, 8: two without improvement
    assert result.best_step == 4
    assert result.best_val_accuracy == pytest.approx(0.6)


def test_best_checkpoint_is_kept(tmp_path, data, monkeypatch):
    train_data, val_data = data
    scores = iter([0.4, 0.8, 0.6, 0.7])
    snapshots = {}
    learner = protonet()

    def fake_accuracy(model, *args, **kwargs):
        score = next(scores)
        snapshots[score] = {k: v.clone() for k, v in model.state_dict().items()}
        return score

    monkeypatch.setattr(training, "_episode_accuracy", fake_accuracy)
    out = tmp_path / "m.safetensors"
    meta = learner_metadata("protonet", "conv4", learner)
    result = train(learner, train_data, out, config(steps=8, val_every=2), val_data=val_data, metadata=meta)
    assert result.best_step == 4 and result.best_val_accuracy == pytest.approx(0.8)
    tensors, saved_meta = read_checkpoint(out)
    assert saved_meta["best_step"] == 4 and saved_meta["val_accuracy"] == pytest.approx(0.8)
    for key, value in snapshots[0.8].items():
        torch.testing.assert_close(tensors[key], value, rtol=0, atol=0)
    # and the final weights differ from the kept ones: the checkpoint is not just the last state
    assert any(not torch.equal(learner.state_dict()[k], tensors[k]) for k in tensors)
    rebuilt, _ = load_learner(out)
    assert isinstance(rebuilt, ProtoNet)


def test_logs_and_summary_are_written(tmp_path, data):
    train_data, val_data = data
    out = tmp_path / "run" / "m.safetensors"
    learner = protonet()
    meta = learner_metadata("protonet", "conv4", learner)
    result = train(learner, train_data, out, config(), val_data=val_data, metadata=meta, progress=False)
    with open(out.with_name("m.safetensors.log.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 for r in rows)
    assert all(float(r["train_loss"]) > 0 for r in rows)
    summary = json.loads(out.with_name("m.safetensors.run.json").read_text())
    assert summary["steps_done"] == 12 and summary["checkpoint"] == str(out)
    assert summary["best_val_accuracy"] == pytest.approx(result.best_val_accuracy)
    assert summary["config"]["ways"] == 4
    _, saved = read_checkpoint(out)
    assert saved["preprocessing"] == {
        "image_size": 28,
        "channels": 1,
        "invert": False,
        "mean": None,
        "std": None,
        "resize": "torch",
    }
    assert saved["train"]["steps"] == 12 and saved["dataset"]["dataset"] == "synthetic"


def test_training_learns_something(tmp_path):
    train_data, val_data = images(20, 10, seed=2), images(6, 10, seed=3)
    learner = protonet()
    result = train(
        learner,
        train_data,
        tmp_path / "m.safetensors",
        config(ways=5, steps=30, val_every=10, val_episodes=30, val_queries=5, lr_step=100),
        val_data=val_data,
        progress=False,
    )
    assert result.best_val_accuracy > 0.6  # chance is 1/3


def test_damaged_resume_state_is_a_checkpoint_error(tmp_path, data):
    train_data, val_data = data
    out = tmp_path / "m.safetensors"
    train(protonet(), train_data, out, config(steps=4), val_data=val_data, progress=False)
    out.with_name("m.safetensors.state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot resume.*--restart"):
        train(protonet(), train_data, out, config(steps=4), val_data=val_data, progress=False)


def test_omniglot_data_records_inverted_preprocessing(tmp_path, data):
    train_data, val_data = data
    omni = LabeledTensors(train_data.data, train_data.labels, train_data.class_names, {"dataset": "omniglot"})
    out = tmp_path / "m.safetensors"
    train(protonet(), omni, out, config(steps=2, val_every=2), val_data=val_data, progress=False)
    assert read_checkpoint(out)[1]["preprocessing"]["invert"] is True
