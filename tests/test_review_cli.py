"""`fewshot review` as a real process: prints its URL, serves on 127.0.0.1, takes decisions,
stops on Ctrl-C with the journal released; another host is served only with a warning."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import pytest
from review_fixtures import review_workspace

pytest.importorskip("uvicorn")


def _default_sigint() -> None:
    # a test run started in the background (`make test &`, nohup, some CI runners) inherits an
    # ignored SIGINT, and Python then never turns Ctrl-C into KeyboardInterrupt: give the
    # server the terminal's default, as a user's shell does
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fewshot_cli.app", "review", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    try:
        # generous: on a loaded 2-core machine the graceful shutdown once took over 30 s
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung server fails the test
        process.kill()
        raise
    return process.returncode, err


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_review_serves_the_page_and_saves_decisions_until_ctrl_c(tmp_path):
    csv_path, _ = review_workspace(tmp_path)
    process = _start(str(csv_path), "--port", "0", "--json")
    try:
        info = json.loads(process.stdout.readline())
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", info["url"]) and info["images"] == 12
        html = _get(info["url"] + "?queue=all")
        token = re.search(r'name="review-token" content="([^"]+)"', html).group(1)
        request = urllib.request.Request(
            info["url"] + "api/decide",
            data=json.dumps({"action": "accept", "rows": [3]}).encode(),
            headers={"Content-Type": "application/json", "X-Review-Token": token},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["rows"][0]["decision"] == "accepted"
    finally:
        code, err = _stop(process)
    assert code == 0, err
    lines = (tmp_path / "labels.csv.review.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["action"] == "accept"
    again = _start(str(csv_path), "--port", "0")  # the lock was released: a new review opens
    try:
        first = again.stdout.readline()
        assert "1 reviewed so far" in first
        assert again.stdout.readline().startswith("open http://127.0.0.1:")
    finally:
        _stop(again)


def test_another_host_is_served_only_with_a_warning(tmp_path):
    csv_path, _ = review_workspace(tmp_path)
    process = _start(str(csv_path), "--port", "0", "--host", "0.0.0.0")
    try:
        warning = process.stderr.readline()
        assert warning.startswith("warning: listening on 0.0.0.0") and "can see these images" in warning
    finally:
        _stop(process)
