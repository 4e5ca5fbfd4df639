"""`fewshot finetune` and `fewshot compare` through Typer's test runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

from fewshot.checkpoints import learner_metadata, load_learner, save_checkpoint
from fewshot.encoders.conv4 import Conv4
from fewshot.learners.protonet import ProtoNet

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folder(tmp_path):
    """4 classes x 10 RGB images: a coloured square at a class-specific corner, on noise."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    for c, name in enumerate(["apple", "leaf", "sky", "sun"]):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 60, (16, 16, 3), dtype=np.uint8)
            r, col = divmod(c, 2)
            pixels[2 + 8 * r : 6 + 8 * r, 2 + 8 * col : 6 + 8 * col] = colours[c]
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def checkpoint(tmp_path):
    """A small Conv-4 ProtoNet checkpoint for 16x16 RGB images (random weights)."""
    torch.manual_seed(0)
    learner = ProtoNet(Conv4(in_channels=3, hidden=8, image_size=16))
    meta = learner_metadata("protonet", "conv4", learner)
    meta["dataset"] = {"dataset": "folder", "image_size": 16}
    meta["preprocessing"] = {"image_size": 16, "channels": 3, "invert": False}
    return save_checkpoint(tmp_path / "proto.safetensors", learner, meta)


def test_compare_runs_every_method_on_the_same_episodes(folder, checkpoint, tmp_path):
    plot = tmp_path / "plot.png"
    episodes = tmp_path / "episodes"
    args = [
        "compare",
        "--encoder",
        str(checkpoint),
        "--dataset",
        str(folder),
        "--ways",
        "3",
        "--shots",
        "1,2",
    ]
    args += ["--episodes", "6", "--device", "cpu", "--plot", str(plot), "--save-episodes", str(episodes)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    from fewshot.workflows.compare import default_methods

    methods = default_methods(has_text=False)  # every registered learner on frozen embeddings
    assert [r["method"] for r in rows] == [m for m in methods for _ in (1, 2)]
    assert methods[:4] == ["protonet", "simpleshot", "linear-probe", "finetune"] and "matching" in methods
    assert "zeroshot" not in methods  # text-prompted: CLIP only
    for k in (1, 2):
        files = {r["episode_file"] for r in rows if r["shots"] == k}
        assert len(files) == 1  # every method on the same episode file
    assert all(r["n_episodes"] == 6 and r["ways"] == 3 and r["queries"] == 8 for r in rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The saved episodes can be given back: same episodes, same accuracies.
    again = runner.invoke(
        app,
        [
            "compare",
            "--encoder",
            str(checkpoint),
            "--dataset",
            str(folder),
            "--shots",
            "1,2",
            "--methods",
            "simpleshot",
            "--device",
            "cpu",
            "--json",
            *sum((["--episode-file", str(p)] for p in sorted(episodes.glob("*.npz"))), []),
        ],
    )
    assert again.exit_code == 0, again.output
    simple = [r for r in rows if r["method"] == "simpleshot"]
    assert [r["mean"] for r in json.loads(again.output)] == [r["mean"] for r in simple]
    # one episode file and no --shots: that file's column only, not the default shots beside it
    two_shot = next(p for p in episodes.glob("*.npz") if "2shot" in p.name)
    only = runner.invoke(
        app,
        ["compare", "--encoder", str(checkpoint), "--dataset", str(folder), "--methods", "simpleshot"]
        + ["--device", "cpu", "--json", "--episode-file", str(two_shot)],
    )
    assert only.exit_code == 0, only.output
    assert [(r["shots"], r["mean"]) for r in json.loads(only.output)] == [(2, simple[1]["mean"])]
    table = runner.invoke(app, args[:-4] + ["--methods", "simpleshot,protonet"])
    assert table.exit_code == 0, table.output
    assert "1-shot" in table.output and "simpleshot" in table.output and "+-" in table.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shots", "1,x"], "whole numbers"),
        (["--methods", "protonet,magic"], "unknown method"),
        (["--methods", "classifier"], "fixed-class"),
        (["--plot", "out.jpg"], ".png"),
        (["--shots", "12"], "no query"),
    ],
)
def test_compare_user_errors_exit_2(folder, checkpoint, extra, message):
    args = ["compare", "--encoder", str(checkpoint), "--dataset", str(folder), "--device", "cpu", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize("strategy", ["gradual", "linear-probe", "simpleshot"])
def test_finetune_writes_a_fixed_class_model(folder, checkpoint, tmp_path, strategy):
    out = tmp_path / f"{strategy}.safetensors"
    args = ["finetune", str(folder), "--encoder", str(checkpoint), "--strategy", strategy, "--out", str(out)]
    args += [
        "--epochs",
        "3",
        "--unfreeze-every",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--no-progress",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation accuracy" in result.output
    model, meta = load_learner(out)
    assert meta["learner"] == "classifier" and model.class_names == ["apple", "leaf", "sky", "sun"]
    assert meta["preprocessing"] == {"image_size": 16, "channels": 3, "invert": False}
    assert meta["encoder"] == "conv4" and meta["finetune"]["strategy"] == strategy
    assert model.logits(torch.rand(2, 3, 16, 16)).shape == (2, 4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "sideways"], "unknown strategy"),
        (["--strategy", "partial", "--freeze", "7"], "blocks"),
        (["--out", "model.pt"], ".safetensors"),
        (["--encoder", "no-such-thing"], "neither a checkpoint"),
    ],
)
def test_finetune_user_errors_exit_2(folder, checkpoint, tmp_path, extra, message):
    args = ["finetune", str(folder), "--encoder", str(checkpoint), "--device", "cpu", "--no-progress"]
    args += ["--out", str(tmp_path / "m.safetensors"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "m.safetensors").exists()


def test_finetune_missing_folder_exit_2(checkpoint, tmp_path):
    result = runner.invoke(app, ["finetune", str(tmp_path / "nope"), "--encoder", str(checkpoint)])
    assert result.exit_code == 2 and "error:" in result.output


def test_clip_methods_compare_on_an_image_folder(folder):
    pytest.importorskip("open_clip")
    args = ["compare", "--encoder", "clip", "--model", "micro-clip", "--pretrained", "none"]
    args += ["--dataset", str(folder), "--ways", "4", "--shots", "1,4", "--episodes", "4", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    # every learner that runs on frozen embeddings, the text-prompted ones first
    from fewshot.workflows.compare import default_methods

    names = list(dict.fromkeys(r["method"] for r in rows))
    assert names == default_methods(has_text=True) and "matching" in names
    assert names[:4] == ["zeroshot", "tip-adapter", "tip-adapter-f", "protonet"]
    assert all(0.0 <= r["mean"] <= 1.0 for r in rows)


def test_finetune_a_clip_image_tower(folder, tmp_path):
    pytest.importorskip("open_clip")
    out = tmp_path / "clip-ft.safetensors"
    args = [
        "finetune",
        str(folder),
        "--encoder",
        "clip",
        "--model",
        "micro-clip",
        "--pretrained",
        "none",
    ]
    args += ["--strategy", "partial", "--freeze", "1", "--epochs", "2", "--device", "cpu", "--no-progress"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    model, meta = load_learner(out)
    assert meta["encoder"] == "clip" and meta["encoder_config"]["pretrained"] is None
    assert meta["preprocessing"]["image_size"] == 32 and len(meta["preprocessing"]["mean"]) == 3
    assert model.class_names == ["apple", "leaf", "sky", "sun"]
    assert model.logits(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_predict_with_a_finetuned_classifier_needs_no_support(folder, checkpoint, tmp_path):
    out = tmp_path / "probe.safetensors"
    args = ["finetune", str(folder), "--encoder", str(checkpoint), "--strategy", "simpleshot"]
    assert runner.invoke(app, [*args, "--out", str(out), "--device", "cpu"]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "predict",
            "--checkpoint",
            str(out),
            "--query",
            str(folder / "sky"),
            "--device",
            "cpu",
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "path,label,probability" and len(lines) == 11
    labels = [line.split(",")[1] for line in lines[1:]]
    assert set(labels) <= {"apple", "leaf", "sky", "sun"} and labels.count("sky") >= 8
    both = runner.invoke(
        app,
        ["predict", "-c", str(out), "-q", str(folder / "sky"), "--support", str(folder), "--device", "cpu"],
    )
    assert both.exit_code == 2 and "drop --support" in both.output
    proto = runner.invoke(
        app, ["predict", "-c", str(checkpoint), "-q", str(folder / "sky"), "--device", "cpu"]
    )
    assert proto.exit_code == 2 and "--support" in proto.output
