"""`fewshot train` and `fewshot finetune` through CliRunner: seeds, resume rules, --json, --out."""

from __future__ import annotations

import json

import pytest
from conftest import synthetic_images
from fewshot_cli.app import app
from typer.testing import CliRunner

import fewshot.data.loading as loading

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def fake_data(monkeypatch):
    """`load_dataset` returns small synthetic images for every subset; records the calls."""
    calls = []

    def load_dataset(dataset, subset="test", split=None, data_dir=None, image_size=None, seed=0, **kw):
        calls.append((dataset, subset))
        n = {"train": 12, "val": 5}.get(subset, 8)
        data = synthetic_images(n, 16, seed={"train": 1, "val": 2}.get(subset, 3), side=16)
        data.info.update(dataset="omniglot", split=split, subset=subset, image_size=16)
        return data

    monkeypatch.setattr(loading, "load_dataset", load_dataset)
    return calls


def train_cli(out, *extra):
    args = ["train", "--ways", "4", "--queries", "2", "--steps", "4", "--val-every", "2"]
    args += ["--val-episodes", "3", "--out", str(out), "--device", "cpu", "--no-progress", *extra]
    return CliRunner().invoke(app, [str(a) for a in args])


def test_same_command_and_seed_give_the_same_checkpoint_bytes(tmp_path, fake_data):
    outs = [tmp_path / name / "m.safetensors" for name in ("a", "b", "c")]
    for out, seed in zip(outs, ("5", "5", "6"), strict=True):
        result = train_cli(out, "--seed", seed)
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_other_settings_at_out_exit_2_and_restart_starts_over(tmp_path, fake_data):
    out = tmp_path / "m.safetensors"
    assert train_cli(out).exit_code == 0
    before = out.read_bytes()
    refused = train_cli(out, "--shots", "2")
    assert refused.exit_code == 2
    assert "shots 1 -> 2" in refused.stderr and "--restart" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and out.read_bytes() == before
    restarted = train_cli(out, "--shots", "2", "--restart")
    assert restarted.exit_code == 0, restarted.output
    fresh = train_cli(tmp_path / "fresh" / "m.safetensors", "--shots", "2")
    assert out.read_bytes() == (tmp_path / "fresh" / "m.safetensors").read_bytes()
    assert fresh.exit_code == 0


def test_train_json_is_one_valid_object_with_null_for_no_validation(tmp_path, fake_data):
    result = train_cli(tmp_path / "m.safetensors", "--trainval", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # NaN would not parse
    assert report["best_val_accuracy"] is None and report["steps_done"] == 4
    assert report["checkpoint"] == str(tmp_path / "m.safetensors")
    validated = json.loads(train_cli(tmp_path / "v.safetensors", "--json").stdout)
    assert 0 <= validated["best_val_accuracy"] <= 1 and validated["resumed_from"] == 0


@pytest.mark.parametrize("bad", ["folder", "/proc/version", "under-a-file", "model.pt"])
def test_unusable_out_is_refused_before_loading_data(tmp_path, fake_data, bad, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever happens, nothing lands in the checkout
    (tmp_path / "f").write_text("x")
    out = {"folder": tmp_path, "under-a-file": tmp_path / "f" / "m.safetensors"}.get(bad, bad)
    result = train_cli(out)
    assert result.exit_code == 2 and "--out" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake_data == []  # refused before any work


@pytest.fixture
def folder(tmp_path):
    from PIL import Image

    rng = __import__("numpy").random.default_rng(0)
    root = tmp_path / "images"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 60, (16, 16, 3), dtype="uint8")
            pixels[4 * c : 4 * c + 4, 2:6] = 250
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def finetune_cli(folder, out, *extra):
    args = ["finetune", str(folder), "--encoder", "conv4", "--image-size", "16", "--epochs", "3"]
    args += ["--batch-size", "4", "--out", str(out), "--device", "cpu", "--no-progress", *extra]
    return CliRunner().invoke(app, [str(a) for a in args])


def test_finetune_same_seed_same_model_other_seed_other_model(folder, tmp_path):
    outs = [tmp_path / name / "m.safetensors" for name in ("a", "b", "c")]
    for out, seed in zip(outs, ("1", "1", "2"), strict=True):
        result = finetune_cli(folder, out, "--seed", seed)
        assert result.exit_code == 0, result.output
    assert outs[0].read_bytes() == outs[1].read_bytes()  # random initial weights, head, order
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_finetune_json_and_other_settings_refused(folder, tmp_path):
    out = tmp_path / "m.safetensors"
    result = finetune_cli(folder, out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["epochs_done"] == 3 and report["classes"] == 3 and report["checkpoint"] == str(out)
    refused = finetune_cli(folder, out, "--epochs", "4")
    assert refused.exit_code == 2 and "epochs 3 -> 4" in refused.stderr
    frozen = finetune_cli(folder, tmp_path / "p.safetensors", "--strategy", "linear-probe", "--json")
    assert frozen.exit_code == 0, frozen.output
    assert json.loads(frozen.stdout)["best_epoch"] is None


def test_finetune_seed_help_speaks_of_fine_tuning():
    result = CliRunner().invoke(app, ["finetune", "--help"], terminal_width=200)
    seed_help = result.output[result.output.index("--seed") :].split("--device")[0]
    assert "episode" not in seed_help and "split" in seed_help


@pytest.mark.parametrize("bad", ["folder", "/proc/version"])
def test_finetune_unusable_out_is_refused_before_work(folder, tmp_path, bad):
    out = tmp_path if bad == "folder" else bad
    result = finetune_cli(folder, out)
    assert result.exit_code == 2 and "--out" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_finetune_random_encoder_weights_come_from_the_seed(folder, tmp_path):
    from safetensors.torch import load_file

    encoders = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        out = tmp_path / name / "p.safetensors"
        result = finetune_cli(folder, out, "--strategy", "linear-probe", "--seed", seed)
        assert result.exit_code == 0, result.output
        encoders.append({k: v for k, v in load_file(out).items() if k.startswith("encoder.")})
    assert encoders[0] and encoders[0].keys() == encoders[2].keys()
    assert all(encoders[0][k].equal(encoders[1][k]) for k in encoders[0])
    assert not all(encoders[0][k].equal(encoders[2][k]) for k in encoders[0])
