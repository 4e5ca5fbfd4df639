"""`fewshot compare --checkpoint`: meta-trained models (Relation, Reptile...) in the same table,
on the same episodes as the frozen-encoder rows."""

from __future__ import annotations

import json

import pytest
from fewshot_cli.app import app
from meta_learners import fake_data
from typer.testing import CliRunner

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """`fewshot train` checkpoints of ProtoNet, Relation Networks and Reptile (3-way heads) on
    fake 16x16 Omniglot; returns method -> path."""
    fake_data(monkeypatch)
    paths = {}
    for method in ("protonet", "relation", "reptile"):
        out = tmp_path / f"{method}.safetensors"
        args = ["train", "--method", method, "--ways", "3", "--queries", "2", "--steps", "2"]
        args += ["--val-every", "2", "--val-episodes", "2", "--out", str(out), "--device", "cpu"]
        result = runner.invoke(app, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
        paths[method] = out
    return paths


def _compare(trained, *extra: str):
    args = ["compare", "--encoder", str(trained["protonet"]), "--methods", "protonet", "--ways", "3"]
    args += ["--shots", "1,2", "--queries", "3", "--episodes", "4", "--device", "cpu", "--no-progress"]
    return runner.invoke(app, [*args, *extra])


def test_checkpoint_rows_run_their_own_learner_on_the_same_episodes(trained, tmp_path):
    episodes = tmp_path / "episodes"
    extra = ["--checkpoint", str(trained["relation"]), "--checkpoint", f"rep={trained['reptile']}"]
    extra += ["--method-option", "reptile.test_inner_steps=2", "--save-episodes", str(episodes), "--json"]
    result = _compare(trained, *extra)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["method"], r["shots"]) for r in rows] == [
        (m, k) for m in ("protonet", "relation", "rep") for k in (1, 2)
    ]
    assert {r["method"]: r["transductive"] for r in rows} == {
        "protonet": False,
        "relation": False,
        "rep": True,  # MAML's convention: BatchNorm normalises the queries together
    }
    for k in (1, 2):
        assert len({r["episode_file"] for r in rows if r["shots"] == k}) == 1
    # the relation row is what `fewshot eval` of that checkpoint gives on the same episode file
    one_shot = next(r for r in rows if r["method"] == "relation" and r["shots"] == 1)
    alone = runner.invoke(
        app,
        ["eval", "-c", str(trained["relation"]), "--episode-file", one_shot["episode_file"]]
        + ["--device", "cpu", "--json"],
    )
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.stdout)["accuracy"] == one_shot["mean"]
    # the option reached the Reptile row: another number of test steps, another result
    more = _compare(trained, "--checkpoint", f"rep={trained['reptile']}", "--json")
    assert more.exit_code == 0, more.output
    rep = [r["mean"] for r in json.loads(more.stdout) if r["method"] == "rep"]
    assert rep != [r["mean"] for r in rows if r["method"] == "rep"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--checkpoint", "missing.safetensors"], "--checkpoint missing.safetensors: no such file"),
        (["--checkpoint", "=x"], "give PATH or LABEL=PATH"),
        (["--checkpoint", "{protonet}"], "a row named 'protonet' is already in the table"),
        (["--checkpoint", "{relation}", "--checkpoint", "{relation}"], "name this one LABEL="),
        (["--checkpoint", "{reptile}", "--ways", "4"], "3-way head"),
        (["--checkpoint", "{reptile}", "--method-option", "reptile.bogus=1"], "no option 'bogus'"),
    ],
)
def test_bad_checkpoints_are_refused_before_any_episode(trained, tmp_path, extra, message):
    extra = [item.format(**{k: str(v) for k, v in trained.items()}) for item in extra]
    episodes = tmp_path / "never"
    result = _compare(trained, *extra, "--save-episodes", str(episodes))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not episodes.exists()
