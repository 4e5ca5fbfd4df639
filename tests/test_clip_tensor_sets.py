"""CLIP on the named tensor sets (grey Fashion-MNIST, 8x8 digits): each item goes through the
model's own preprocess, so grey images become RGB at CLIP's input size, in every command."""

from __future__ import annotations

import json

import torch
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.build import build_encoder, load_for_encoder

runner = CliRunner()
MICRO = ["--encoder", "clip", "--model", "micro-clip", "--dataset", "digits"]


def test_grey_tensor_set_becomes_clip_input():
    source = build_encoder("clip", "cpu", {"model": "micro-clip", "pretrained": "default"})
    data = load_for_encoder(source, "digits", "test")
    assert data.data.dim() == 4 and tuple(data.data.shape[1:]) == source.encoder.input_size
    assert len(data.labels) == len(data.data) and data.class_names[0] == "0"
    # the same pixels as the PIL path: one digit through preprocess directly
    from PIL import Image

    from fewshot.build import load_data

    raw = load_data("digits", "test").data[0]
    pixels = (raw.clamp(0, 1) * 255).round().to(torch.uint8)[0].numpy()
    direct = source.encoder.preprocess(Image.fromarray(pixels).convert("RGB"))
    assert torch.equal(data.data[0], direct)
    features = source.encoder.encode_batched(data.data[:8], 8)
    assert features.shape == (8, source.encoder.embed_dim) and torch.isfinite(features).all()


def test_compare_and_eval_run_clip_on_digits(tmp_path):
    common = ["--shots", "1", "--episodes", "2", "--ways", "3", "--queries", "2", "--json"]
    out = runner.invoke(app, ["compare", *MICRO, "--methods", "protonet", *common])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output.strip().splitlines()[-1])
    assert rows
    out = runner.invoke(
        app, ["eval", *MICRO, "--episodes", "2", "--ways", "3", "--shots", "1", "--queries", "2", "--json"]
    )
    assert out.exit_code == 0, out.output
