"""Encoder-attached indexing: image folders in, search by text and by example image, `fewshot index`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fewshot_cli.app import app
from PIL import Image
from typer.testing import CliRunner

from fewshot.encoders import ENCODERS
from fewshot.encoders.base import Encoder
from fewshot.errors import FewshotError
from fewshot.index import EmbeddingIndex
from fewshot.index.images import image_id

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}


class ColourEncoder(Encoder):
    """Embeds an image as its mean colour, and the words red/green/blue as pure colours."""

    embed_dim = 3
    input_size = (3, 8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) - 0.3  # centred so that cosine separates the colours

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = [torch.tensor(COLOURS[t.split()[-1]], dtype=torch.float32) / 255 - 0.3 for t in texts]
        return torch.stack(rows)


class NoTextEncoder(ColourEncoder):
    encode_text = None


def make_folder(root, per_colour=4, seed=0):
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_colour):
            pixels = np.clip(np.array(rgb) + rng.integers(-20, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}{i}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "photos")


def test_add_images_and_search_by_text_and_image(folder):
    from fewshot.data.images import find_images

    index = EmbeddingIndex(3, encoder=ColourEncoder(), encoder_name="colour")
    report = index.add_images(find_images(folder), workers=0, batch_size=5)
    assert len(report.added) == 12 and len(index) == 12
    assert report.failures == [(image_id(folder / "broken.jpg"), report.failures[0][1])]
    hits = index.search_text("a photo of red", k=4)[0]
    assert [h.metadata["label"] for h in hits] == ["red"] * 4
    assert hits[0].metadata["path"] == hits[0].id and hits[0].id.startswith("/")
    hits = index.search_images(folder / "blue" / "blue0.png", k=4)[0]
    assert hits[0].id == image_id(folder / "blue" / "blue0.png")
    assert {h.metadata["label"] for h in hits} == {"blue"}
    again = index.add_images(find_images(folder), workers=0)
    assert again.added == [] and len(again.skipped) == 12


def test_untrained_index_gathers_enough_images_to_train(folder):
    from fewshot.data.images import find_images

    index = EmbeddingIndex(3, factory="IVF2,Flat", encoder=ColourEncoder())
    report = index.add_images(find_images(folder), workers=0, batch_size=2)
    assert len(report.added) == 12 and index.is_trained


def test_text_search_needs_a_text_encoder(folder):
    index = EmbeddingIndex(3, encoder=NoTextEncoder())
    with pytest.raises(FewshotError, match="cannot embed text"):
        index.search_text("red")
    with pytest.raises(FewshotError, match="no encoder attached"):
        EmbeddingIndex(3).search_text("red")
    with pytest.raises(FewshotError, match="3-d"):
        EmbeddingIndex(4, encoder=ColourEncoder())


@pytest.fixture
def colour_registered(monkeypatch):
    monkeypatch.setitem(ENCODERS._entries, "colour-test", ColourEncoder)
    return "colour-test"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_build_search_add_info(folder, tmp_path, colour_registered):
    out = tmp_path / "ix"
    common = ["--workers", 0, "--no-progress", "--device", "cpu"]
    result = invoke("index", "build", folder, "--out", out, "--encoder", colour_registered, *common)
    assert result.exit_code == 0, result.output
    assert "indexed 12 images" in result.output and "broken.jpg" in result.output

    result = invoke("index", "search", out, "--text", "green", "-k", 3, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [r["metadata"]["label"] for r in payload["results"]] == ["green"] * 3
    assert payload["query"] == {"text": "green"}

    result = invoke("index", "search", out, "--image", folder / "red" / "red1.png", "-k", 2)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(image_id(folder / "red" / "red1.png"))

    make_folder(folder, per_colour=6, seed=1)  # 2 new files per colour; the 4 old ones are rewritten
    result = invoke("index", "add", out, folder, *common)
    assert result.exit_code == 0, result.output
    assert "added 6 new image(s)" in result.output and "12 already indexed" in result.output

    result = invoke("index", "info", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["items"] == 18 and info["encoder"] == colour_registered and info["dim"] == 3

    result = invoke("index", "build", folder, "--out", out, "--encoder", colour_registered, *common)
    assert result.exit_code == 2 and "already holds an index" in result.output


def test_cli_user_errors_exit_2(folder, tmp_path, colour_registered):
    assert invoke("index", "info", tmp_path / "none").exit_code == 2
    out = tmp_path / "ix"
    invoke(
        "index",
        "build",
        folder,
        "--out",
        out,
        "--encoder",
        colour_registered,
        "--workers",
        0,
        "--no-progress",
    )
    both = invoke("index", "search", out, "--text", "red", "--image", folder / "red" / "red0.png")
    assert both.exit_code == 2 and "exactly one" in both.output
    assert invoke("index", "search", out).exit_code == 2
    assert invoke("index", "search", out, "--image", tmp_path / "nope.png").exit_code == 2
    result = invoke("index", "search", out, "--text", "red", "--nprobe", 4)
    assert result.exit_code == 2 and "nprobe does not apply" in result.output
    result = invoke(
        "index",
        "build",
        folder,
        "--out",
        tmp_path / "b",
        "--encoder",
        colour_registered,
        "--factory",
        "IVF64,Flat",
        "--workers",
        0,
        "--no-progress",
    )
    assert result.exit_code == 2 and "at least 64 vectors" in result.output
    assert not (tmp_path / "b").exists()
    result = invoke("index", "build", tmp_path / "empty-nothing", "--out", tmp_path / "c")
    assert result.exit_code == 2


def test_cli_with_micro_clip(tmp_path):
    """The real CLIP code path with the shipped micro CLIP: search a folder of shapes by text."""
    pytest.importorskip("open_clip")
    from fewshot.zeroshot.micro_clip import make_folder as make_shapes

    shapes = make_shapes(tmp_path / "shapes", per_class=3)
    out = tmp_path / "clip-ix"
    fast = ["--workers", 0, "--no-progress", "--device", "cpu"]
    result = invoke("index", "build", shapes, "--out", out, "--model", "micro-clip", *fast)
    assert result.exit_code == 0, result.output
    assert "indexed 72 images" in result.output
    info = json.loads(invoke("index", "info", out, "--json").output)
    assert info["encoder"] == "clip" and info["encoder_config"]["model"] == "micro-clip"

    result = invoke("index", "search", out, "--text", "blue triangle", "-k", 3, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    labels = [hit["metadata"]["label"] for hit in json.loads(result.output)["results"]]
    assert labels.count("blue triangle") >= 2, labels
    query = shapes / "green cross" / "00001.jpg"
    result = invoke("index", "search", out, "--image", query, "-k", 2, "--json", "--device", "cpu")
    hits = json.loads(result.output)["results"]
    assert hits[0]["id"] == image_id(query) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)

    make_shapes(tmp_path / "shapes", per_class=4)  # one new file per class
    result = invoke("index", "add", out, shapes, *fast)  # rebuilds micro-clip from the sidecar
    assert result.exit_code == 0, result.output
    assert "added 24 new image(s)" in result.output and "72 already indexed" in result.output
    result = invoke(
        "index", "build", shapes, "--out", tmp_path / "x", "--encoder", "identity", "--model", "m"
    )
    assert (
        result.exit_code == 2 and "--model and --pretrained apply to the clip encoder only" in result.output
    )
