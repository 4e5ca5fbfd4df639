"""Per-class, worst-class and per-group accuracy in `fewshot eval` and `fewshot finetune` reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.class_accuracy import class_accuracy, group_of
from fewshot.data.tensors import LabeledTensors


def test_class_and_group_accuracy_on_known_predictions():
    names = ["animals/cat", "animals/dog", "tools/saw"]
    labels = np.array([0, 0, 1, 1, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 1, 0, 2, 2])
    report = class_accuracy(predictions, labels, names, group_level=1)
    assert report["per_class"]["animals/cat"] == {"accuracy": 0.5, "items": 2}
    assert report["worst_class"] == {"class": "animals/cat", "accuracy": 0.5, "items": 2}
    assert report["per_group"]["animals"] == {"accuracy": 4 / 6, "items": 6, "classes": 2}
    assert report["worst_group"]["group"] == "animals"
    assert report["mean_per_class"] == pytest.approx((0.5 + 0.75 + 1) / 3)
    assert group_of("a/b/c", 2) == "a/b" and group_of("solo", 1) == "solo"


def confusable(n_per_class: int = 30) -> LabeledTensors:
    """Four Gaussian classes in 8-d; classes 2 and 3 nearly coincide (the worst ones)."""
    g = torch.Generator().manual_seed(0)
    means = 3 * torch.eye(4, 8)
    means[3] = means[2] + 0.3
    labels = torch.arange(4).repeat_interleave(n_per_class)
    x = means[labels] + torch.randn(len(labels), 8, generator=g)
    return LabeledTensors(x, labels, ["g1/a", "g1/b", "g2/c", "g2/d"])


def test_episodic_per_class_accuracy_is_the_same_on_every_path_and_finds_the_confused_class():
    from fewshot.encoders.base import IdentityEncoder
    from fewshot.evaluation import evaluate
    from fewshot.learners.protonet import ProtoNet

    data = confusable()
    settings = dict(
        ways=4, shots=2, queries=5, episodes=40, seed=1, device="cpu", progress=False, group_level=1
    )
    cached = evaluate(ProtoNet(IdentityEncoder(8)), data, **settings)
    per_episode = evaluate(ProtoNet(IdentityEncoder(8)), data, use_cache=False, **settings)
    assert cached.classes == per_episode.classes
    per_class = cached.classes["per_class"]
    assert sum(v["items"] for v in per_class.values()) == 40 * 4 * 5
    hits = sum(v["accuracy"] * v["items"] for v in per_class.values())
    assert hits / (40 * 20) == pytest.approx(cached.mean)  # every episode has 20 queries
    assert cached.classes["worst_class"]["class"] in ("g2/c", "g2/d")
    assert cached.classes["worst_group"]["group"] == "g2"


@pytest.fixture
def nested_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for group, classes in (("g1", ("a", "b")), ("g2", ("c",))):
        for k, name in enumerate(classes):
            folder = tmp_path / "imgs" / group / name
            folder.mkdir(parents=True)
            for i in range(6):
                pixels = np.clip(rng.normal(80 * (k + 1), 20, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path / "imgs"


def test_finetune_report_has_per_class_and_per_group_accuracy(nested_folder, tmp_path):
    argv = ["finetune", str(nested_folder), "-e", "conv4", "--image-size", "16", "-s", "linear-probe"]
    argv += ["--val-fraction", "0.5", "--group-level", "1", "--out", str(tmp_path / "m.safetensors")]
    result = CliRunner().invoke(app, [*argv, "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["per_class"]) == {"g1/a", "g1/b", "g2/c"}
    assert {v["items"] for v in report["per_class"].values()} == {3}
    assert set(report["per_group"]) == {"g1", "g2"} and report["per_group"]["g1"]["classes"] == 2
    worst = min(v["accuracy"] for v in report["per_class"].values())
    assert report["worst_class"]["accuracy"] == worst
    table = CliRunner().invoke(app, [*argv, "--restart", "--device", "cpu"])
    assert "worst classes:" in table.output and "by folder level 1" in table.output


def test_eval_report_has_per_class_accuracy(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    from fewshot.data.embeddings import save_embeddings

    vectors = rng.normal(size=(60, 4)) + 3 * np.eye(3, 4)[labels]
    save_embeddings(tmp_path / "f.npz", vectors, labels, ["a", "b", "c"])
    argv = ["eval", "--dataset", str(tmp_path / "f.npz"), "--subset", "all", "--ways", "3", "--episodes", "5"]
    result = CliRunner().invoke(app, [*argv, "--json", "--device", "cpu", "-m", "protonet"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["per_class"]) == 3 and report["worst_class"]["accuracy"] <= report["accuracy"]
