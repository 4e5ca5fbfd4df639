"""Feature maps and per-block linear probes (`fewshot representations`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fewshot_cli.app import app
from torch import nn
from typer.testing import CliRunner

from fewshot.data.tensors import LabeledTensors
from fewshot.transfer.representations import feature_map, probe_layers


class TwoBlocks(nn.Module):
    """Block 0 keeps the input (its classes are separable), block 1 erases it."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.keep = nn.Linear(d, d)
        self.erase = nn.Linear(d, d)
        with torch.no_grad():
            self.keep.weight.copy_(torch.eye(d))
            self.keep.bias.zero_()
            self.erase.weight.zero_()
            self.erase.bias.fill_(1.0)

    def forward(self, x):
        return self.erase(self.keep(x))


def blobs(n: int, seed: int) -> LabeledTensors:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 4 * torch.eye(6)[y] + torch.randn(n, 6, generator=g)
    return LabeledTensors(x, y, ["a", "b", "c"])


def test_probe_finds_the_block_that_carries_the_classes():
    rows = probe_layers(TwoBlocks(6), blobs(90, 0), blobs(60, 1))
    assert [r["features"] for r in rows] == [6, 6]
    assert rows[0]["accuracy"] > 0.9
    assert rows[1]["accuracy"] == pytest.approx(1 / 3)  # constant features: one class predicted


def test_feature_map_keeps_separated_classes_apart():
    data = blobs(60, 0)
    coords = feature_map(data.data.numpy(), "tsne", seed=0)
    y = data.labels.numpy()
    centres = np.stack([coords[y == c].mean(0) for c in range(3)])
    within = np.mean([np.linalg.norm(coords[y == c] - centres[c], axis=1).mean() for c in range(3)])
    between = min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3))
    assert between > 2 * within


def test_representations_command(tmp_path):
    out, map_png, probe_png = tmp_path / "r.json", tmp_path / "map.png", tmp_path / "probe.png"
    argv = [
        "representations",
        "digits",
        "-e",
        "protonet-conv4-omniglot",
        "--per-class",
        "12",
        "--device",
        "cpu",
    ]
    argv += ["--map", str(map_png), "--probe", "--probe-plot", str(probe_png), "--out", str(out)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["items"] == 120 and report["probe_train_items"] + report["probe_test_items"] == 120
    assert [r["block"] for r in report["probe"]] == [0, 1, 2, 3]  # Conv-4's four conv blocks
    assert all(0 <= r["accuracy"] <= 1 for r in report["probe"])
    for png in (map_png, probe_png):
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert "block  3" in result.output
