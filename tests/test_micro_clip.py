"""The shipped micro CLIP really classifies: zero-shot accuracy far above chance, offline."""

from __future__ import annotations

import csv
import json

import pytest
import torch

pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def micro_clip():
    from fewshot.encoders.clip import ClipEncoder, micro_clip_files

    if not micro_clip_files()[1].is_file():
        pytest.fail("the shipped micro CLIP weights are missing: python -m fewshot.zeroshot.micro_clip train")
    return ClipEncoder("micro-clip", device="cpu")  # pretrained="default": the shipped weights


def test_shipped_weights_are_small_and_load_with_plain_open_clip():
    import open_clip

    from fewshot.encoders.clip import micro_clip_files, register_model_configs

    _, weights = micro_clip_files()
    assert weights.stat().st_size < 2_000_000
    register_model_configs()
    model = open_clip.create_model("micro-clip", pretrained=str(weights))
    assert abs(model.logit_scale.exp().item() - 1 / 0.07) > 1  # trained, not a fresh model's 1/0.07


def test_zero_shot_accuracy_far_above_chance(micro_clip):
    from fewshot.zeroshot.micro_clip import zero_shot_accuracy

    for templates in ("simple", "imagenet"):
        accuracy, n_classes = zero_shot_accuracy(micro_clip, per_class=8, seed=2024, templates=templates)
        assert n_classes == 24
        assert accuracy > 0.8, f"{templates}: {accuracy:.3f} (chance {1 / n_classes:.3f})"


def test_label_command_on_synthetic_folder(micro_clip, tmp_path):
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    from fewshot.zeroshot.micro_clip import CLASS_NAMES, make_folder

    folder = make_folder(tmp_path / "shapes", per_class=3, seed=7)
    out = tmp_path / "labels.csv"
    args = ["label", str(folder), "--model", "micro-clip", "--labels", ",".join(CLASS_NAMES)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 72
    correct = sum(row["label"] == row["path"].split("/")[-2] for row in rows)
    assert correct / len(rows) > 0.8


def test_eval_with_clip_encoder_on_an_image_folder(micro_clip, tmp_path):
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    from fewshot.zeroshot.micro_clip import make_folder

    folder = make_folder(tmp_path / "shapes", per_class=4, seed=3)
    args = ["eval", "--encoder", "clip", "--model", "micro-clip", "--method", "protonet"]
    args += ["--dataset", str(folder), "--subset", "all", "--ways", "5", "--shots", "1", "--queries", "3"]
    result = CliRunner().invoke(app, [*args, "--episodes", "100", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 100 and report["accuracy"] > 0.6  # chance: 0.2


@pytest.mark.slow
def test_training_script_regenerates_weights(tmp_path):
    from fewshot.encoders.clip import ClipEncoder
    from fewshot.zeroshot.micro_clip import train

    out = train(tmp_path / "w.safetensors", steps=20, pool_per_class=10, log_every=10)
    encoder = ClipEncoder("micro-clip", pretrained=str(out), device="cpu")
    assert torch.isfinite(encoder.encode_text(["a red circle"])).all()


def test_trainer_writes_beside_the_user_by_default_never_the_shipped_file(monkeypatch, tmp_path):
    import fewshot.encoders.clip as clip
    import fewshot.tools.micro_clip_train as micro

    written = []
    monkeypatch.setattr(micro, "train", lambda out, **kw: written.append(out) or out)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(micro, "zero_shot_accuracy", lambda *a, **k: (1.0, 24))
    monkeypatch.setattr(clip, "ClipEncoder", lambda *a, **k: None)
    micro.main(["train"])
    micro.main(["train", "--out", str(tmp_path / "w.safetensors")])
    micro.main(["train", "--overwrite-shipped"])
    shipped = clip.micro_clip_files()[1]
    assert written == [micro.DEFAULT_OUT, tmp_path / "w.safetensors", shipped]
    assert str(micro.DEFAULT_OUT) == "micro-clip.safetensors"  # in the working folder


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--steps", "1"], "--steps"),
        (["train", "--steps", "x"], "--steps"),
        (["train", "--seed", "-1"], "--seed"),
        (["train", "--out", "/proc/version"], "--out"),
        (["train", "--out", "."], "folder"),
        (["train", "--out", "a.safetensors", "--overwrite-shipped"], "not both"),
        (["make-folder", "d", "--per-class", "0"], "--per-class"),
        (["make-folder", "d", "--size", "3"], "--size"),
    ],
)
def test_trainer_options_are_checked_in_one_line(argv, fragment, capsys, tmp_path, monkeypatch):
    from fewshot.zeroshot.micro_clip import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_short_training_run_works(tmp_path):
    """--steps 10 used to divide by zero in the one-cycle schedule."""
    from fewshot.zeroshot.micro_clip import train

    out = train(tmp_path / "w.safetensors", steps=10, groups=1, pool_per_class=1, log_every=5)
    assert out.stat().st_size > 0
