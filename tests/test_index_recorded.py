"""The encoder an index records: checked by `info`, `add` and `search` alike, never unpickled,
and rebuilt on demand after `EmbeddingIndex.load`."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.errors import CheckpointError, FewshotError
from fewshot.index import EmbeddingIndex
from fewshot.index.images import image_id

pytestmark = pytest.mark.usefixtures("one_faiss_thread")
FAST = ["--workers", "0", "--no-progress", "--device", "cpu"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip_index(tmp_path_factory):
    """A micro-CLIP index (the shipped weights) over a few shapes; copied by each test."""
    pytest.importorskip("open_clip")
    from fewshot.zeroshot.micro_clip import make_folder

    root = tmp_path_factory.mktemp("recorded")
    shapes = make_folder(root / "shapes", per_class=1, size=32)
    result = invoke("index", "build", shapes, "--out", root / "ix", "--model", "micro-clip", *FAST)
    assert result.exit_code == 0, result.output
    return shapes, root / "ix"


@pytest.fixture
def index_dir(clip_index, tmp_path):
    shutil.copytree(clip_index[1], tmp_path / "ix")
    return tmp_path / "ix"


def edit_record(directory, change):
    path = directory / "index.json"
    sidecar = json.loads(path.read_text())
    change(sidecar["encoder"])
    path.write_text(json.dumps(sidecar))


def weights_file():
    from fewshot.encoders.clip import micro_clip_files

    return micro_clip_files()[1]


@pytest.fixture
def no_unpickling(monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called: a file named by a sidecar was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


def pickled_weights(tmp_path):
    path = tmp_path / "other.bin"
    path.write_bytes(pickle.dumps({"visual.proj": [1.0]}))
    return path


def fake_safetensors(tmp_path):
    path = tmp_path / "fake.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    return path


def changed_weights(tmp_path):
    """Real safetensors weights, but not the ones the index was built with."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights_file())
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    path = tmp_path / "retrained.safetensors"
    save_file(tensors, path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (pickled_weights, "is not a .safetensors file"),
        (fake_safetensors, "not a readable safetensors file"),
        (changed_weights, "is not the one this index was built with"),
        (lambda tmp: tmp / "missing.safetensors", "does not exist"),
    ],
    ids=["pickle", "fake-safetensors", "other-weights", "missing"],
)
def test_sidecar_naming_other_weights_is_refused_by_info_search_and_add(
    index_dir, clip_index, tmp_path, make, message, no_unpickling
):
    weights = make(tmp_path)
    edit_record(index_dir, lambda record: record["config"].update(pretrained=str(weights)))
    shapes = clip_index[0]
    for argv in (
        ["index", "info", index_dir],
        ["index", "search", index_dir, "--text", "red circle", "--device", "cpu"],
        ["index", "search", index_dir, "--image", next(shapes.rglob("*.jpg")), "--device", "cpu"],
        ["index", "add", index_dir, shapes, *FAST],
    ):
        result = invoke(*argv)
        assert result.exit_code == 2, (argv, result.output)
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    with pytest.raises(CheckpointError, match=message):
        EmbeddingIndex.load(index_dir).search_text("red circle")


def test_replaced_default_weights_are_refused(index_dir, tmp_path):
    """The record's checksum covers the shipped weights too ("default")."""
    edit_record(index_dir, lambda record: record["weights"].update(sha256="0" * 64))
    result = invoke("index", "info", index_dir)
    assert result.exit_code == 2 and "not the one this index was built with" in result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["config"].update(cache_dir="/tmp/pickles"), "unexpected settings ['cache_dir']"),
        (lambda r: r.update(name="no-such-encoder"), "not registered"),
        (lambda r: r["config"].update(model={"a": 1}), "bad encoder record"),
    ],
)
def test_foreign_encoder_records_are_refused(index_dir, change, message):
    edit_record(index_dir, change)
    for argv in (["index", "info", index_dir], ["index", "search", index_dir, "--text", "red"]):
        result = invoke(*argv)
        assert result.exit_code == 2 and message in result.output, result.output


def test_build_refuses_weights_it_would_have_to_unpickle(tmp_path, clip_index, no_unpickling):
    result = invoke(
        "index", "build", clip_index[0], "--out", tmp_path / "b", "--model", "micro-clip",
        "--pretrained", pickled_weights(tmp_path), *FAST,
    )  # fmt: skip
    assert result.exit_code == 2 and "--pretrained" in result.output and ".safetensors" in result.output
    assert not (tmp_path / "b").exists()


def test_local_weights_are_recorded_by_absolute_path(tmp_path, clip_index, monkeypatch):
    shutil.copy(weights_file(), tmp_path / "w.safetensors")
    monkeypatch.chdir(tmp_path)
    args = ["--model", "micro-clip", "--pretrained", "w.safetensors", *FAST]
    assert invoke("index", "build", clip_index[0], "--out", "ix", *args).exit_code == 0
    record = json.loads((tmp_path / "ix" / "index.json").read_text())["encoder"]
    assert record["config"]["pretrained"] == str(tmp_path / "w.safetensors")
    monkeypatch.chdir(clip_index[0])  # another working folder
    result = invoke("index", "search", tmp_path / "ix", "--text", "red circle", "--device", "cpu")
    assert result.exit_code == 0, result.output


def test_loaded_index_rebuilds_its_encoder_on_demand(index_dir, clip_index):
    query = next(clip_index[0].rglob("*.jpg"))
    index = EmbeddingIndex.load(index_dir)
    assert index.encoder is None  # nothing built until needed
    by_text = index.search_text("blue square", k=3)
    assert index.encoder is not None and len(by_text[0]) == 3
    assert EmbeddingIndex.load(index_dir).search_images(query, k=1)[0][0].id == image_id(query)
    argv = ["index", "search", index_dir, "--text", "blue square", "-k", 3, "--json", "--device", "cpu"]
    cli = json.loads(invoke(*argv).stdout)
    assert [hit["id"] for hit in cli["results"]] == [hit.id for hit in by_text[0]]


def test_index_without_a_recorded_encoder_says_how_to_attach_one(tmp_path):
    import numpy as np

    EmbeddingIndex(4).add(np.eye(4)).save(tmp_path / "raw")
    with pytest.raises(FewshotError, match=r"attach_encoder\(encoder\)"):
        EmbeddingIndex.load(tmp_path / "raw").search_text("red")


def test_weights_no_file_records_are_not_silently_replaced(clip_index, tmp_path):
    """A trained (here: randomly initialised) Conv-4 attached by hand cannot be rebuilt from the
    record: searching refuses instead of embedding the query with other weights."""
    import torch

    from fewshot.encoders import create_encoder

    torch.manual_seed(0)
    conv4 = create_encoder("conv4", in_channels=3, hidden=8, image_size=28)
    index = EmbeddingIndex(conv4.embed_dim, encoder=conv4, encoder_name="conv4")
    index.add_images(sorted(clip_index[0].rglob("*.jpg"))[:6], workers=0)
    index.save(tmp_path / "conv")
    query = sorted(clip_index[0].rglob("*.jpg"))[0]
    with pytest.raises(CheckpointError, match="other weights than the one that built the index"):
        EmbeddingIndex.load(tmp_path / "conv").search_images(query)
    hit = EmbeddingIndex.load(tmp_path / "conv", encoder=conv4).search_images(query, k=1)[0][0]
    assert hit.id == image_id(query)


def test_build_refuses_random_weights_up_front(clip_index, tmp_path):
    argv = ["index", "build", clip_index[0], "--out", tmp_path / "r", "--model", "micro-clip"]
    result = invoke(*argv, "--pretrained", "none", *FAST)
    assert result.exit_code == 2 and "--pretrained none has random initial weights" in result.output
    result = invoke(*argv[:5], "--encoder", "conv4", *FAST)
    assert result.exit_code == 2 and "--encoder conv4 has random initial weights" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
