"""`fewshot data download/info` against a local HTTP server and fake openers (no real network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import time
import urllib.error
from functools import partial
from pathlib import Path

import pytest
from fake_omniglot import fake_images, write_zips
from fewshot_cli.app import app
from typer.testing import CliRunner

import fewshot.data.download as download
from fewshot.data.download import RemoteFile, download_omniglot
from fewshot.data.omniglot import load_omniglot
from fewshot.errors import DataError

SPLITS = {
    "train": ["Alpha/character01", "Alpha/character02"],
    "val": ["Beta_(Test)/character01"],
    "trainval": ["Alpha/character01", "Alpha/character02", "Beta_(Test)/character01"],
    "test": ["Gamma/character01", "Gamma/character02"],
}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A local HTTP server over fake Omniglot zips and split files; yields the file specs."""
    folder = tmp_path_factory.mktemp("server")
    write_zips(folder, fake_images())
    for part, chars in SPLITS.items():
        lines = [f"{c}/rot{a:03d}" for c in chars for a in (0, 90, 180, 270)]
        (folder / f"{part}.txt").write_text("\n".join(lines) + "\n")
    handler = partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def md5(name):
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    specs = (
        RemoteFile(f"{base}/images_background.zip", "images_background.zip", md5("images_background.zip"), 5),
        RemoteFile(f"{base}/images_evaluation.zip", "images_evaluation.zip", md5("images_evaluation.zip"), 2),
        *(
            RemoteFile(f"{base}/{part}.txt", f"splits/vinyals/{part}.txt", lines=4 * len(chars))
            for part, chars in SPLITS.items()
        ),
    )
    yield specs, folder
    server.shutdown()
    server.server_close()


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part") or p.name.endswith(".tmp")]


def test_download_verifies_writes_and_loads(tmp_path, served):
    specs, _ = served
    messages = []
    root = download_omniglot(tmp_path, files=specs, progress=False, log=messages.append)
    assert root == tmp_path / "omniglot"
    for name in (
        "images_background.zip",
        "images_evaluation.npz",
        "alphabets.tsv",
        "splits/vinyals/test.txt",
    ):
        assert (root / name).is_file(), name
    assert (root / "alphabets.tsv").read_text().splitlines()[1:] == [
        "1\t3\tAlpha\tbackground",
        "4\t5\tBeta_(Test)\tbackground",
        "6\t7\tGamma\tevaluation",
    ]
    assert not _leftovers(root)
    data = load_omniglot("vinyals", "test", tmp_path, image_size=12)
    assert data.n_classes == 8 and data.class_names[1] == "Gamma/character01/rot090"
    # a second run keeps valid files and fetches nothing
    download_omniglot(tmp_path, files=specs, progress=False, opener=_refuse, log=messages.append)
    assert any("present and valid" in m for m in messages)
    # with the compact .npz forms present, the zips are not needed
    for name in ("images_background.zip", "images_evaluation.zip"):
        (root / name).unlink()
    download_omniglot(tmp_path, files=specs, progress=False, opener=_refuse, log=messages.append)
    assert any("images_background.zip not needed" in m for m in messages)
    assert load_omniglot("lake", "background", tmp_path, image_size=12).n_classes == 5


def _refuse(url, timeout):
    raise AssertionError(f"should not fetch {url}")


class _Response(io.BytesIO):
    def __init__(self, payload: bytes, length: int | None = None, fail_after: int | None = None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(size)


def test_offline_fails_fast_with_a_hint(tmp_path, served):
    specs, _ = served

    def offline(url, timeout):
        assert timeout <= 10
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    start = time.perf_counter()
    with pytest.raises(DataError, match=r"--data-dir or FEWSHOT_DATA_DIR") as err:
        download_omniglot(tmp_path, files=specs, progress=False, opener=offline)
    assert time.perf_counter() - start < 2 and "\n" not in str(err.value)
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (lambda good: _Response(good[:-10] + b"0123456789"), "checksum mismatch"),
        (lambda good: _Response(good[: len(good) // 2], length=len(good)), "incomplete"),
        (lambda good: _Response(good, fail_after=1), "broke off"),
    ],
)
def test_failed_download_leaves_the_old_file_untouched(tmp_path, served, response, message):
    specs, folder = served
    root = download_omniglot(tmp_path, files=specs, progress=False, compact=False)
    before = (root / "images_background.zip").read_bytes()
    good = (folder / "images_background.zip").read_bytes()
    with pytest.raises(DataError, match=message):
        download_omniglot(
            tmp_path, files=specs[:1], force=True, progress=False, opener=lambda url, timeout: response(good)
        )
    assert (root / "images_background.zip").read_bytes() == before
    assert not _leftovers(root)


def test_wrong_structure_and_split_files_are_refused(tmp_path, served):
    specs, folder = served
    zip_spec = RemoteFile(specs[0].url, "images_background.zip", None, characters=964)
    with pytest.raises(DataError, match="holds 5 characters, expected 964"):
        download_omniglot(tmp_path, files=(zip_spec,), progress=False)
    text_spec = RemoteFile(specs[2].url, "splits/vinyals/train.txt", lines=9)
    with pytest.raises(DataError, match="8 classes, expected 9"):
        download_omniglot(tmp_path, files=(text_spec,), progress=False)
    html = RemoteFile(specs[2].url, "splits/vinyals/train.txt")
    with pytest.raises(DataError, match="not a split file"):
        download_omniglot(
            tmp_path, files=(html,), progress=False, opener=lambda u, timeout: _Response(b"<html>404</html>")
        )
    assert not (tmp_path / "omniglot" / "splits" / "vinyals" / "train.txt").exists()


def test_cli_download_offline_is_one_line_and_exit_2(tmp_path, monkeypatch):
    # a port nobody listens on: the connection is refused at once, as when offline
    monkeypatch.setattr(
        download, "OMNIGLOT_FILES", (RemoteFile("http://127.0.0.1:9/x.zip", "images_background.zip"),)
    )
    result = CliRunner().invoke(
        app, ["data", "download", "omniglot", "--data-dir", str(tmp_path), "--no-progress"]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot download")
    assert "FEWSHOT_DATA_DIR" in result.stderr
    assert not (tmp_path / "omniglot").exists()  # no empty folder left behind


def test_cli_download_and_info(tmp_path, served, monkeypatch):
    specs, _ = served
    monkeypatch.setattr(download, "OMNIGLOT_FILES", specs)
    result = CliRunner().invoke(app, ["data", "download", "--data-dir", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Omniglot is ready" in result.stdout
    again = CliRunner().invoke(app, ["data", "download", "--data-dir", str(tmp_path), "--json"])
    assert json.loads(again.stdout) == {
        "dataset": "omniglot",
        "folder": str(tmp_path / "omniglot"),
        "ready": True,
    }
    info = CliRunner().invoke(app, ["data", "info", "--data-dir", str(tmp_path)])
    assert info.exit_code == 0
    assert "from --data-dir" in info.stdout and "images_background.npz, images_background.zip" in info.stdout
    assert "splits/vinyals/test.txt" in info.stdout and "8 classes" in info.stdout
    bad = CliRunner().invoke(app, ["data", "download", "mnist", "--data-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown data set 'mnist'" in bad.stderr


def test_cli_info_on_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["data", "info"])
    assert result.exit_code == 0 and "from $FEWSHOT_DATA_DIR" in result.stdout
    assert result.stdout.count("missing") == 7
    as_json = json.loads(CliRunner().invoke(app, ["data", "info", "--json"]).stdout)
    assert as_json["origin"] == "$FEWSHOT_DATA_DIR" and as_json["data_dir"] == str(tmp_path)
    assert as_json["items"]["alphabets.tsv"].startswith("missing") and len(as_json["items"]) == 7
