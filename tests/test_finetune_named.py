"""`fewshot finetune` on a named data set: the official training part, an encoder sized to it."""

from __future__ import annotations

import json

import pytest
from fewshot_cli.app import app
from typer.testing import CliRunner

pytest.importorskip("sklearn")


def test_finetune_from_scratch_on_digits_sizes_conv4_to_the_grey_images(tmp_path):
    out = tmp_path / "digits.safetensors"
    args = ["finetune", "digits", "--encoder", "conv4", "--epochs", "1", "--batch-size", "128"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == 10 and report["epochs_done"] == 1 and out.exists()
    from fewshot.checkpoints import read_checkpoint

    _, meta = read_checkpoint(out)
    assert meta["encoder_config"]["in_channels"] == 1 and meta["encoder_config"]["image_size"] == 28
    assert meta["dataset"]["subset"] == "train"  # not the held-out test images
