"""Every command through CliRunner: outputs and exit codes (2 for user errors)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from conftest import synthetic_images
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

import fewshot.data.loading as loading
from fewshot.checkpoints import load_learner

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def fake_data(monkeypatch):
    """`load_dataset` returns small synthetic images for every subset (fast CLI tests)."""
    calls = []

    def load_dataset(dataset, subset="test", split=None, data_dir=None, image_size=None, seed=0, **kw):
        from fewshot.errors import DataError

        calls.append((dataset, subset, split, image_size, kw))
        if dataset not in ("omniglot", "synthetic"):
            raise DataError(f"data set {dataset!r} is neither 'omniglot' nor an existing path")
        n = {"train": 12, "val": 5, "test": 8}.get(subset, 8)
        data = synthetic_images(n, 20, seed=hash(subset) % 100)
        data.info.update(dataset="omniglot", split=split, subset=subset, image_size=28)
        return data

    monkeypatch.setattr(loading, "load_dataset", load_dataset)
    return calls


# -- eval ---------------------------------------------------------------------------------------


def test_eval_table(tiny_checkpoint, fake_data):
    result = invoke("eval", "--checkpoint", tiny_checkpoint, "--episodes", 30, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "5-way 1-shot, 15 queries per class" in result.output
    assert "accuracy" in result.output and "% +- " in result.output and "95% CI" in result.output
    assert "30 (seed 0)" in result.output


def test_eval_json(tiny_checkpoint, fake_data):
    result = invoke(
        "eval", "-c", tiny_checkpoint, "--ways", 3, "--shots", 2, "--queries", 5, "--episodes", 25, "--json"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["ways"], out["shots"], out["queries"], out["episodes"]) == (3, 2, 5, 25)
    assert 0 <= out["accuracy"] <= 1 and out["ci95"] >= 0
    assert out["method"] == "protonet" and out["split"] == "vinyals"


def test_eval_json_matches_library(tiny_checkpoint, fake_data):
    from fewshot.evaluation import evaluate

    result = invoke(
        "eval", "-c", tiny_checkpoint, "--episodes", 40, "--seed", 3, "--json", "--metric", "cosine"
    )
    out = json.loads(result.stdout)
    learner, _ = load_learner(tiny_checkpoint)
    learner.metric = "cosine"
    data = loading.load_dataset("omniglot", "test")
    expected = evaluate(learner, data, episodes=40, seed=3, progress=False, device="cpu")
    assert out["accuracy"] == pytest.approx(expected.mean)
    assert out["metric"] == "cosine"


def test_eval_save_and_replay_episodes(tmp_path, tiny_checkpoint, fake_data):
    episodes = tmp_path / "episodes.npz"
    first = invoke("eval", "-c", tiny_checkpoint, "--episodes", 20, "--json", "--save-episodes", episodes)
    assert first.exit_code == 0, first.output
    assert episodes.exists()
    again = invoke("eval", "-c", tiny_checkpoint, "--episode-file", episodes, "--seed", 5, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["accuracy"] == json.loads(first.stdout)["accuracy"]


def test_eval_untrained_registry_encoder(fake_data):
    result = invoke("eval", "--encoder", "conv4", "--episodes", 10, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["encoder"] == "conv4" and out["checkpoint"] is None


def test_eval_method_wraps_checkpoint_encoder(tiny_checkpoint, fake_data, monkeypatch):
    from fewshot.learners import LEARNERS
    from fewshot.learners.protonet import ProtoNet

    class Other(ProtoNet):
        """A stand-in for another frozen-encoder learner (e.g. SimpleShot)."""

    monkeypatch.setitem(LEARNERS._entries, "other", Other)
    result = invoke("eval", "-c", tiny_checkpoint, "--method", "other", "--episodes", 10, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == "other"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope"], "unknown method 'nope'"),
        (["--ways", 50], "ways=50 but the data set has only 8 classes"),
        (["--dataset", "/no/such/place"], "neither 'omniglot' nor an existing path"),
        (["--metric", "manhattan"], "unknown metric"),
        (["--queries", 30], "--skip-small-classes"),
        (["--episode-file", "/no/such/file.npz"], "episode file not found"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_eval_bad_input_exit_2(tiny_checkpoint, fake_data, args, message):
    result = invoke("eval", "-c", tiny_checkpoint, "--episodes", 5, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x80\x04K\x01."])
def test_eval_unreadable_checkpoint_exit_2(tmp_path, fake_data, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    result = invoke("eval", "-c", bad)
    assert result.exit_code == 2
    assert "error:" in result.stderr and "checkpoint" in result.stderr


def test_eval_missing_checkpoint_exit_2(tmp_path, fake_data):
    result = invoke("eval", "-c", tmp_path / "missing.safetensors")
    assert result.exit_code == 2 and "checkpoint not found" in result.stderr


@pytest.mark.slow
def test_eval_real_omniglot(tiny_checkpoint, omniglot_dir):
    result = invoke(
        "eval",
        "-c",
        tiny_checkpoint,
        "--subset",
        "val",
        "--episodes",
        20,
        "--json",
        "--data-dir",
        omniglot_dir,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["split"] == "vinyals" and out["subset"] == "val" and out["episodes"] == 20


# -- train --------------------------------------------------------------------------------------


def invoke_train(out, *extra, ways=4, queries=3, steps=4, val_every=2):
    """`fewshot train` on the fake data, on the CPU, small enough for a unit test."""
    return invoke(
        "train",
        *("--ways", ways, "--queries", queries, "--steps", steps, "--val-every", val_every),
        *("--val-episodes", 5, "--out", out, "--device", "cpu", "--no-progress"),
        *extra,
    )


def test_train_writes_checkpoint_that_eval_reads(tmp_path, fake_data):
    out = tmp_path / "m.safetensors"
    result = invoke_train(out, "--shots", 1, "--metric", "cosine")
    assert result.exit_code == 0, result.output
    assert "best validation accuracy" in result.output
    learner, meta = load_learner(out)
    assert meta["train"]["steps"] == 4 and meta["preprocessing"]["invert"] is True
    assert learner.metric == "cosine"
    assert (tmp_path / "m.safetensors.log.csv").exists() and (tmp_path / "m.safetensors.run.json").exists()
    evaluated = invoke("eval", "-c", out, "--episodes", 5, "--json")
    assert evaluated.exit_code == 0, evaluated.output


def test_train_trainval_uses_train_and_val_classes_and_keeps_the_last_step(tmp_path, fake_data):
    out = tmp_path / "m.safetensors"
    result = invoke_train(out, "--trainval", queries=2)
    assert result.exit_code == 0, result.output
    assert "kept step 4" in result.output
    assert [c[1] for c in fake_data] == ["trainval"]  # one load, no validation subset
    log = (tmp_path / "m.safetensors.log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["2", "4"] and log[1].split(",")[3] == "nan"
    _, meta = load_learner(out)
    assert meta["best_step"] == 4 and meta["val_accuracy"] is None


def test_join_classes_keeps_classes_apart():
    from fewshot.data.splits import join_classes

    a, b = synthetic_images(3, 2, seed=0), synthetic_images(2, 2, seed=1)
    joined = join_classes(a, b, "trainval")
    assert joined.n_classes == 5 and len(joined) == len(a) + len(b)
    assert joined.labels[len(a) :].tolist() == (b.labels + 3).tolist()
    assert joined.class_names == a.class_names + b.class_names


@pytest.mark.slow  # builds, trains and saves the full 12M-parameter ResNet-12
def test_train_resnet12(tmp_path, fake_data):
    out = tmp_path / "r.safetensors"
    result = invoke_train(out, "--encoder", "resnet12", ways=3, queries=2, steps=1, val_every=1)
    assert result.exit_code == 0, result.output
    assert load_learner(out)[1]["encoder_config"]["channels"] == [64, 160, 320, 640]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope"], "unknown method"),
        (["--encoder", "nope"], "unknown encoder"),
        (["--ways", 40], "ways=40"),
        (["--dataset", "/no/such"], "neither 'omniglot'"),
        (["--metric", "manhattan"], "unknown metric"),
        (["--method", "simpleshot"], "has no meta-training loss"),
    ],
)
def test_train_bad_input_exit_2(tmp_path, fake_data, args, message):
    result = invoke("train", "--steps", 2, "--out", tmp_path / "m.safetensors", "--no-progress", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


# -- predict ------------------------------------------------------------------------------------


def draw(path, kind: int, seed: int):
    """A black-ink-on-white image of shape `kind`, jittered by `seed`."""
    rng = np.random.default_rng(seed)
    canvas = np.full((56, 56), 255, dtype=np.uint8)
    dx, dy = rng.integers(-3, 4, size=2)
    if kind == 0:
        canvas[20 + dy : 36 + dy, 10 + dx : 46 + dx] = 0  # horizontal bar
    elif kind == 1:
        canvas[10 + dy : 46 + dy, 20 + dx : 36 + dx] = 0  # vertical bar
    else:
        canvas[14 + dy : 42 + dy, 14 + dx : 42 + dx] = 0
        canvas[22 + dy : 34 + dy, 22 + dx : 34 + dx] = 255  # ring
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path


@pytest.fixture
def folders(tmp_path):
    support, query = tmp_path / "support", tmp_path / "query"
    names = ["bar", "column", "ring"]
    for kind, name in enumerate(names):
        for i in range(3):
            draw(support / name / f"{i}.png", kind, seed=10 * kind + i)
        draw(query / f"{name}_q.png", kind, seed=100 + kind)
    (query / "broken.png").write_bytes(b"\x89PNG not really")
    return support, query


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_writes_csv_and_reports_bad_files(tmp_path, tiny_checkpoint, folders):
    support, query = folders
    out = tmp_path / "preds.csv"
    result = invoke(
        "predict",
        "-c",
        tiny_checkpoint,
        "--support",
        support,
        "--query",
        query,
        "--out",
        out,
        "--top-k",
        2,
        "--workers",
        0,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stderr and "broken.png" in result.stderr
    rows = read_csv(out.read_text())
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == ["bar_q.png", "column_q.png", "ring_q.png"]
    for row in rows:
        assert row["label"] in {"bar", "column", "ring"} and row["label_2"] != row["label"]
        assert 1 >= float(row["probability"]) >= float(row["probability_2"]) >= 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_predict_agrees_with_the_learner_on_the_same_tensors(tiny_checkpoint, folders):
    from fewshot.preprocessing import preprocessing_from_metadata

    support, query = folders
    result = invoke(
        "predict",
        "-c",
        tiny_checkpoint,
        "-s",
        support,
        "-q",
        query / "ring_q.png",
        "-q",
        query / "bar_q.png",
        "--workers",
        0,
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(result.stdout)
    learner, meta = load_learner(tiny_checkpoint)
    transform = preprocessing_from_metadata(meta).transform()
    names = ["bar", "column", "ring"]
    xs = torch.stack([transform(Image.open(p)) for n in names for p in sorted((support / n).iterdir())])
    ys = torch.arange(3).repeat_interleave(3)
    queries = torch.stack([transform(Image.open(query / f)) for f in ("bar_q.png", "ring_q.png")])
    proba = learner.fit(xs, ys).predict_proba(queries)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    for i, f in enumerate(("bar_q.png", "ring_q.png")):
        assert by_name[f]["label"] == names[int(proba[i].argmax())]
        assert float(by_name[f]["probability"]) == pytest.approx(float(proba[i].max()), abs=1e-4)


def test_predict_empty_support_class_exit_2(tiny_checkpoint, folders):
    support, query = folders
    (support / "empty").mkdir()
    result = invoke("predict", "-c", tiny_checkpoint, "-s", support, "-q", query, "--workers", 0)
    assert result.exit_code == 2
    assert "support class 'empty' has no images" in result.stderr


def test_predict_unreadable_support_class_exit_2(tiny_checkpoint, folders):
    support, query = folders
    (support / "junk").mkdir()
    (support / "junk" / "a.png").write_bytes(b"nope")
    result = invoke("predict", "-c", tiny_checkpoint, "-s", support, "-q", query, "--workers", 0)
    assert result.exit_code == 2
    assert "support class 'junk' has no readable image" in result.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s, q: (s / "missing", q), "does not exist"),
        (lambda s, q: (s, q / "missing.png"), "does not exist"),
        (lambda s, q: (s / "bar", q), "no class subfolders"),
    ],
)
def test_predict_bad_paths_exit_2(tiny_checkpoint, folders, change, message):
    support, query = change(*folders)
    result = invoke("predict", "-c", tiny_checkpoint, "-s", support, "-q", query, "--workers", 0)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_predict_only_bad_queries_exit_2(tiny_checkpoint, folders):
    support, query = folders
    result = invoke(
        "predict", "-c", tiny_checkpoint, "-s", support, "-q", query / "broken.png", "--workers", 0
    )
    assert result.exit_code == 2 and "no query image could be read" in result.stderr


def test_predict_foreign_checkpoint_exit_2(tmp_path, folders):
    bad = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    support, query = folders
    result = invoke("predict", "-c", bad, "-s", support, "-q", query, "--workers", 0)
    assert result.exit_code == 2 and "pickle" in result.stderr


def test_help_is_fast_and_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "eval", "predict"):
        assert command in result.output


def test_eval_registry_encoder_receives_model_and_pretrained(fake_data, monkeypatch):
    from fewshot.encoders import ENCODERS
    from fewshot.encoders.base import Encoder

    class Fake(Encoder):
        input_size = None

        def __init__(self, model="small", pretrained=None):
            super().__init__()
            self.model, self.pretrained, self.embed_dim = model, pretrained, 28 * 28

        def forward(self, x):
            return x.flatten(1)

        def config(self):
            return {"model": self.model, "pretrained": self.pretrained}

    monkeypatch.setitem(ENCODERS._entries, "fake", Fake)
    result = invoke(
        "eval", "--encoder", "fake", "--model", "big", "--pretrained", "tag", "--episodes", 5, "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["encoder"] == "fake"
    seen = []
    monkeypatch.setattr(Fake, "config", lambda self: seen.append((self.model, self.pretrained)) or {})
    invoke("eval", "--encoder", "fake", "--model", "big", "--pretrained", "tag", "--episodes", 5, "--json")
    assert seen == [("big", "tag")]


def test_eval_without_shipped_checkpoint_exit_2(tmp_path, fake_data, monkeypatch):
    import fewshot.models

    monkeypatch.setattr(fewshot.models, "DEFAULT_CHECKPOINT", tmp_path / "absent.safetensors")
    result = invoke("eval", "--episodes", 5)
    assert result.exit_code == 2
    assert "not installed" in result.stderr and "--checkpoint" in result.stderr


def test_eval_encoder_conflicting_with_checkpoint_exit_2(tiny_checkpoint, fake_data):
    result = invoke("eval", "-c", tiny_checkpoint, "--encoder", "resnet12", "--episodes", 5)
    assert result.exit_code == 2 and "conflicts with the checkpoint" in result.stderr


def test_eval_on_an_image_folder_uses_the_checkpoint_preprocessing(tiny_checkpoint, folders):
    support, _ = folders
    result = invoke(
        "eval",
        "-c",
        tiny_checkpoint,
        "--dataset",
        support,
        "--subset",
        "all",
        "--ways",
        3,
        "--shots",
        1,
        "--queries",
        2,
        "--episodes",
        10,
        "--json",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["episodes"] == 10 and out["ways"] == 3


def test_eval_on_a_folder_with_too_few_classes_exit_2(tiny_checkpoint, folders):
    support, _ = folders
    result = invoke(
        "eval", "-c", tiny_checkpoint, "--dataset", support, "--subset", "all", "--ways", 5, "--queries", 2
    )
    assert result.exit_code == 2 and "ways=5" in result.stderr
