"""`--within-group`, `--variable-episodes` and `--rotations` on `fewshot train`, `eval` and
`compare`, through CliRunner on small grouped synthetic images."""

from __future__ import annotations

import json

import pytest
from conftest import synthetic_images
from fewshot_cli.app import app
from typer.testing import CliRunner

import fewshot.data.loading as loading
from fewshot.sampling import read_episode_settings

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def grouped(monkeypatch):
    """`load_dataset` gives 12 classes of 20 images in groups g0, g1, g2 of 5, 4 and 3
    classes, and records the split it was asked for."""
    calls = []

    def load_dataset(dataset, subset="test", split=None, data_dir=None, image_size=None, seed=0, **kw):
        calls.append(split)
        data = synthetic_images(12, 20, seed=len(subset))
        data.class_groups = ["g0"] * 5 + ["g1"] * 4 + ["g2"] * 3
        data.info.update(dataset="omniglot", split=split, subset=subset, image_size=28)
        return data

    monkeypatch.setattr(loading, "load_dataset", load_dataset)
    return calls


def _eval(checkpoint, *extra):
    return invoke("eval", "-c", checkpoint, "--episodes", 20, "--queries", 3, "--device", "cpu", *extra)


def test_eval_within_group_and_variable_episodes_are_reported(tiny_checkpoint, grouped):
    plain = json.loads(_eval(tiny_checkpoint, "--ways", 3, "--json").stdout)
    assert not plain["within_group"] and not plain["variable_episodes"]
    grouped_run = json.loads(_eval(tiny_checkpoint, "--ways", 3, "--within-group", "--json").stdout)
    assert grouped_run["within_group"] and grouped_run["accuracy"] != plain["accuracy"]
    table = _eval(tiny_checkpoint, "--ways", 3, "--shots", 2, "--within-group", "--variable-episodes")
    assert table.exit_code == 0, table.output
    assert "variable, up to 3-way 2-shot, 3 queries per class, classes from one group" in table.output


def test_eval_small_group_is_named_and_can_be_left_out(tiny_checkpoint, grouped):
    refused = _eval(tiny_checkpoint, "--ways", 4, "--within-group")
    assert refused.exit_code == 2
    assert "group 'g2' has only 3 classes but ways=4" in refused.stderr
    skipped = _eval(tiny_checkpoint, "--ways", 4, "--within-group", "--skip-small-groups", "--json")
    assert json.loads(skipped.stdout)["within_group"]
    none_left = _eval(tiny_checkpoint, "--ways", 6, "--within-group", "--skip-small-groups")
    assert none_left.exit_code == 2
    assert "no group has that many classes (the largest, 'g0', has 5)" in none_left.stderr


def test_saved_within_group_episodes_replay_the_same(tmp_path, tiny_checkpoint, grouped):
    path = tmp_path / "eps.npz"
    first = json.loads(
        _eval(tiny_checkpoint, "--ways", 3, "--within-group", "--save-episodes", path, "--json").stdout
    )
    assert read_episode_settings(path)["within_group"]
    again = json.loads(
        invoke("eval", "-c", tiny_checkpoint, "--episode-file", path, "--device", "cpu", "--json").stdout
    )
    assert again["accuracy"] == first["accuracy"] and again["within_group"]
    refused = invoke("eval", "-c", tiny_checkpoint, "--episode-file", path, "--variable-episodes")
    assert refused.exit_code == 2 and "--variable-episodes contradicts" in refused.stderr


def test_rotations_choose_the_split_asked_for(tiny_checkpoint, grouped):
    assert _eval(tiny_checkpoint, "--split", "lake", "--rotations").exit_code == 0
    assert _eval(tiny_checkpoint, "--split", "vinyals", "--no-rotations").exit_code == 0
    assert _eval(tiny_checkpoint, "--split", "lake").exit_code == 0
    assert grouped == ["lake+rotations", "vinyals+no-rotations", "lake"]


def test_train_within_group_variable_episodes_are_run_settings(tmp_path, grouped):
    out = tmp_path / "m.safetensors"
    args = ["--ways", 3, "--queries", 2, "--shots", 2, "--steps", 3, "--val-every", 3, "--val-episodes", 4]
    result = invoke(
        "train",
        *args,
        "--out",
        out,
        "--device",
        "cpu",
        "--no-progress",
        "--within-group",
        "--variable-episodes",
        "--rotations",
    )
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "m.safetensors.run.json").read_text())
    assert run["config"]["extra"] == {"episodes": {"within_group": True, "variable": True}}
    assert grouped[0] == "vinyals+rotations"
    refused = invoke(
        "train", "--method", "maml", "--variable-episodes", "--steps", 2, "--out", tmp_path / "x.safetensors"
    )
    assert refused.exit_code == 2 and "maml has a fixed 5-way head" in refused.stderr


def test_compare_within_group_draws_and_saves_grouped_episodes(tmp_path, tiny_checkpoint, grouped):
    folder = tmp_path / "eps"
    result = invoke(
        "compare",
        "--encoder",
        tiny_checkpoint,
        "--methods",
        "protonet",
        "--shots",
        "1,2",
        "--ways",
        3,
        "--episodes",
        10,
        "--within-group",
        "--variable-episodes",
        "--save-episodes",
        folder,
        "--device",
        "cpu",
        "--json",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["shots"] for r in rows] == [1, 2]
    for path in sorted(folder.glob("*.npz")):
        settings = read_episode_settings(path)
        assert settings["within_group"] and settings["variable"]
    refused = invoke("compare", "--encoder", tiny_checkpoint, "--ways", 4, "--within-group", "--shots", "1")
    assert refused.exit_code == 2 and "group 'g2' has only 3 classes" in refused.stderr
