"""`fewshot index build/add` as writers: one at a time (lock), checks before any embedding, --json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fewshot_cli.app import app
from test_index_images import ColourEncoder, make_folder
from typer.testing import CliRunner

from fewshot.encoders import ENCODERS
from fewshot.errors import FewshotError
from fewshot.index import EmbeddingIndex, storage
from fewshot.locking import exclusive_lock

pytestmark = pytest.mark.usefixtures("one_faiss_thread")
FAST = ["--workers", "0", "--no-progress", "--device", "cpu"]


@pytest.fixture
def colour(monkeypatch):
    monkeypatch.setitem(ENCODERS._entries, "colour-test", ColourEncoder)
    return "colour-test"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def built(tmp_path, colour):
    photos = make_folder(tmp_path / "photos")
    out = tmp_path / "ix"
    result = invoke("index", "build", photos, "--out", out, "--encoder", colour, *FAST)
    assert result.exit_code == 0, result.output
    make_folder(photos, per_colour=6, seed=1)  # 6 new files
    return photos, out


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_second_writer_is_refused_while_one_holds_the_index(built, colour):
    photos, out = built
    before = snapshot(out)
    with exclusive_lock(out, "this index"):
        result = invoke("index", "add", out, photos, *FAST)
        assert result.exit_code == 2, result.output
        assert "another fewshot run is writing this index" in result.output
        result = invoke("index", "build", photos, "--out", out, "--encoder", colour, "--overwrite", *FAST)
        assert result.exit_code == 2 and "another fewshot run is writing" in result.output
        with pytest.raises(FewshotError, match="another fewshot run"):
            EmbeddingIndex.load(out).save(out)
    assert snapshot(out) == before
    assert invoke("index", "add", out, photos, *FAST).exit_code == 0  # lock released


def test_add_holds_the_lock_from_load_to_save(built, monkeypatch):
    """A second `add` that starts while the first is embedding is refused (no lost update)."""
    photos, out = built
    seen = []
    original = EmbeddingIndex.add_images

    def add_images_and_race(self, *args, **kwargs):
        seen.append(invoke("index", "add", out, photos, *FAST))  # the concurrent run
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EmbeddingIndex, "add_images", add_images_and_race)
    result = invoke("index", "add", out, photos, *FAST)
    assert result.exit_code == 0, result.output
    assert "added 6 new image(s)" in result.output and "(now 18)" in result.output
    assert seen[0].exit_code == 2 and "another fewshot run is writing" in seen[0].output
    assert len(EmbeddingIndex.load(out)) == 18


def test_build_and_add_print_valid_json(built, colour, tmp_path):
    photos, out = built
    result = invoke("index", "add", out, photos, "--json", *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == 6 and summary["already_indexed"] == 12 and summary["items"] == 18
    assert summary["unreadable"] == 1 and summary["failures"][0]["path"].endswith("broken.jpg")
    result = invoke("index", "build", photos, "--out", tmp_path / "j", "--encoder", colour, "--json", *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["added"], summary["items"], summary["dim"], summary["metric"]) == (18, 18, 3, "cosine")
    result = invoke("index", "add", out, photos, "--json", *FAST)
    assert json.loads(result.stdout)["added"] == 0


def test_too_few_images_to_train_are_refused_before_embedding(tmp_path, colour, monkeypatch):
    photos = make_folder(tmp_path / "photos")

    def no_embedding(*args, **kwargs):
        raise AssertionError("embedded before refusing")

    monkeypatch.setattr(EmbeddingIndex, "add_images", no_embedding)
    args = ["--encoder", colour, "--factory", "IVF64,Flat", *FAST]
    result = invoke("index", "build", photos, "--out", tmp_path / "b", *args)
    assert result.exit_code == 2 and "--factory 'IVF64,Flat' needs at least 64 vectors" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no folder, no lock file


def test_rerun_add_cleans_what_a_killed_save_left(built, colour):
    photos, out = built
    assert invoke("index", "add", out, photos, *FAST).exit_code == 0
    kept = snapshot(out)
    (out / "index-0123456789abcdef.faiss").write_bytes(b"orphan")
    (out / ".index.json.abc.tmp").write_bytes(b"{")
    result = invoke("index", "add", out, photos, *FAST)  # nothing new: still tidies up
    assert result.exit_code == 0 and "added 0 new" in result.output
    assert snapshot(out) == kept


def test_save_leaves_only_the_committed_pair(tmp_path):
    index = EmbeddingIndex(4).add(np.eye(4)[:2], ids=["a", "b"])
    for _ in range(3):
        index.save(tmp_path / "ix")
    sidecar = storage.read_sidecar(tmp_path / "ix")
    assert sorted(snapshot(tmp_path / "ix")) == sorted([sidecar["faiss_file"], "index.json"])


def test_out_may_be_the_working_folder(tmp_path, colour, monkeypatch):
    photos = make_folder(tmp_path / "photos")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    result = invoke("index", "build", photos, "--out", ".", "--encoder", colour, *FAST)
    assert result.exit_code == 0, result.output
    assert invoke("index", "add", ".", photos, *FAST).exit_code == 0
    assert (tmp_path / "here.lock").exists() and len(EmbeddingIndex.load(".")) == 12
