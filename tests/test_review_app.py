"""Every route of the review page through Starlette's TestClient, and its security: files only
from under the images root, escaped labels, the per-run token, no cross-origin requests,
no foreign Host (DNS rebinding), nothing from the CSV executed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from review_fixtures import label_rows, make_images, review_workspace, write_label_csv

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
from starlette.testclient import TestClient  # noqa: E402

from fewshot.review.app import build_app  # noqa: E402
from fewshot.review.session import ReviewSession  # noqa: E402

BASE = "http://127.0.0.1:8765"


def _client(session: ReviewSession) -> TestClient:
    app = build_app(session, ["127.0.0.1", "localhost"])
    return TestClient(app, base_url=BASE, raise_server_exceptions=True)


@pytest.fixture
def workspace(tmp_path):
    return review_workspace(tmp_path)


@pytest.fixture
def review(workspace):
    with ReviewSession(workspace[0]) as session:
        yield session, _client(session)


def _post(client, session, url, body, **headers):
    h = {"X-Review-Token": session.token, "Content-Type": "application/json", "Origin": BASE, **headers}
    return client.post(url, content=json.dumps(body), headers=h)


def test_the_page_shows_galleries_counts_and_escapes_labels(review):
    session, client = review
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('class="card ') == 12  # the unreadable row has no card
    assert session.token in html
    assert "https://" not in html and "http://" not in html  # nothing fetched from outside
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    red = client.get("/", params={"label": "red", "sort": "margin", "queue": "todo"}).text
    assert red.count('class="card ') == session.state.page(label="red").total
    assert client.get("/", params={"page": "x", "sort": "evil", "threshold": "nan?"}).status_code == 200


def test_static_files_are_served_and_self_contained(review):
    _, client = review
    js, css = client.get("/static/review.js"), client.get("/static/review.css")
    assert js.status_code == css.status_code == 200
    assert "innerHTML" not in js.text and "eval(" not in js.text
    for text in (js.text, css.text):
        assert "http://" not in text and "https://" not in text and "@import" not in text
    assert client.get("/static/../app.py").status_code == 404


def test_summary_and_rows_are_json_pages(review):
    session, client = review
    summary = client.get("/api/summary").json()
    assert summary["summary"]["images"] == 12 and len(summary["counts"]) == 3
    rows = client.get("/api/rows", params={"sort": "margin", "per_page": 5, "page": 2}).json()
    assert rows["total"] == 12 and rows["pages"] == 3 and len(rows["rows"]) == 5
    margins = [r["margin"] for r in rows["rows"]]
    assert margins == sorted(margins)


def test_thumbnails_and_images_of_rows_inside_the_root(review):
    session, client = review
    thumb = client.get("/thumb/0")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    client.get("/thumb/0")
    assert session.thumbs.made == 1  # made once, then cached
    image = client.get("/image/0")
    assert image.content == session.file(0).read_bytes() and image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    for url in ("/thumb/12", "/image/12", "/image/999", "/image/-1", "/thumb/abc"):
        assert client.get(url).status_code == 404, url  # unreadable row, no such row


def test_paths_out_of_the_root_are_never_served(tmp_path):
    root = tmp_path / "photos"
    paths = make_images(root, 1)
    secret = tmp_path / "secret.png"
    secret.write_bytes(paths[0].read_bytes())
    os.symlink(secret, root / "red" / "link-out.png")
    os.symlink("/etc/passwd", root / "red" / "passwd.png")
    (root / "red" / "notes.txt").write_text("not an image")
    rows = label_rows(paths)
    for bad in (
        f"{root}/red/../../secret.png",
        "../secret.png",
        str(secret),
        "/etc/passwd",
        f"{root}/red/link-out.png",
        f"{root}/red/passwd.png",
        f"{root}/red/notes.txt",
    ):
        rows.append({**rows[0], "path": bad})
    csv_path = write_label_csv(tmp_path / "labels.csv", rows)
    with ReviewSession(csv_path, images=root) as session:
        client = _client(session)
        assert client.get("/image/0").status_code == 200
        for row in range(3, 3 + 7):
            assert client.get(f"/image/{row}").status_code == 404, session.state.results.paths[row]
            assert client.get(f"/thumb/{row}").status_code == 404
        for url in ("/image/..%2F..%2Fsecret.png", "/image//etc/passwd", "/thumb/%2e%2e/secret.png"):
            assert client.get(url).status_code == 404


def test_state_changes_need_the_token_same_origin_and_json(review):
    session, client = review
    body = {"action": "accept", "rows": [0]}
    assert _post(client, session, "/api/decide", body, **{"X-Review-Token": "wrong"}).status_code == 403
    no_token = client.post("/api/decide", json=body, headers={"Origin": BASE})
    assert no_token.status_code == 403
    assert _post(client, session, "/api/decide", body, Origin="http://evil.example").status_code == 403
    assert _post(client, session, "/api/decide", body, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    form = client.post(
        "/api/decide", data={"action": "accept"}, headers={"X-Review-Token": session.token, "Origin": BASE}
    )
    assert form.status_code == 415
    assert client.get("/api/decide").status_code == 405
    assert session.state.journal.records == []  # nothing was decided
    rebinding = TestClient(client.app, base_url="http://attacker.example:8765")
    assert rebinding.get("/").status_code == 400  # a foreign Host: DNS rebinding
    assert _post(client, session, "/api/decide", body).status_code == 200


def test_decide_undo_and_reload_shows_the_decisions(review):
    session, client = review
    r = _post(client, session, "/api/decide", {"action": "accept", "rows": [0], "base": [None], "tab": "t"})
    assert r.status_code == 200 and r.json()["rows"][0]["decision"] == "accepted"
    view = {"label": "green", "queue": "all", "sort": "margin", "page": 1, "threshold": 0.5}
    r = _post(
        client, session, "/api/decide", {"action": "correct", "rows": [1], "label": "<b>x</b>", "view": view}
    )
    assert r.json()["rows"][0]["label"] == "<b>x</b>" and r.json()["summary"]["corrected"] == 1
    stale = _post(client, session, "/api/decide", {"action": "skip", "rows": [0], "base": [None]})
    assert stale.status_code == 409 and stale.json()["rows"][0]["decision"] == "accepted"
    bad = _post(client, session, "/api/decide", {"action": "correct", "rows": [0], "label": ""})
    assert bad.status_code == 400 and "label" in bad.json()["error"]
    assert _post(client, session, "/api/decide", [1, 2]).status_code == 400
    first = client.get("/", follow_redirects=False)  # plain "/": back where the last decision was made
    assert first.status_code == 303 and "label=green" in first.headers["location"]
    html = client.get("/", params={"queue": "reviewed"}).text
    assert html.count('class="card ') == 2 and "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    undo = _post(client, session, "/api/undo", {"tab": "t"})
    assert undo.status_code == 200 and undo.json()["rows"][0]["row"] == 0
    assert client.get("/api/summary").json()["summary"]["reviewed"] == 1


def test_bulk_accept_export_and_refit_routes(review, workspace):
    session, client = review
    label = session.state.counts()[0]["label"]
    r = _post(client, session, "/api/bulk-accept", {"label": label, "threshold": 0.0})
    assert r.status_code == 200 and r.json()["accepted"] == session.state.counts()[0]["count"]
    assert (
        _post(client, session, "/api/bulk-accept", {"label": label, "threshold": 0.0}).json()["accepted"] == 0
    )
    assert _post(client, session, "/api/bulk-accept", {"label": label, "threshold": 2}).status_code == 400
    assert _post(client, session, "/api/bulk-accept", {"label": "nope", "threshold": 0.5}).status_code == 400
    for kind in ("csv", "label-studio", "fiftyone", "folder"):
        r = _post(client, session, "/api/export", {"kind": kind, "mode": "copy"})
        assert r.status_code == 200 and Path(r.json()["path"]).exists(), kind
    assert _post(client, session, "/api/export", {"kind": "/etc/passwd"}).status_code == 400
    assert _post(client, session, "/api/export", {"kind": "folder", "mode": "shred"}).status_code == 400
    r = _post(client, session, "/api/refit", {"method": "simpleshot"})
    assert r.status_code == 400 and "two labels" in r.json()["error"]  # one label accepted so far


def test_nothing_in_the_csv_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    root = tmp_path / "photos"
    paths = make_images(root, 2)
    rows = label_rows(paths)
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"$(touch {marker})",
        "{{ 12345*6789 }}",
        '=HYPERLINK("http://evil")',
    ]
    for i, payload in enumerate(payloads):
        rows[i]["labels"] = [payload, *rows[i]["labels"][1:]]
    csv_path = write_label_csv(tmp_path / "labels.csv", rows)
    with ReviewSession(csv_path) as session:
        client = _client(session)
        html = client.get("/").text
        assert "{{ 12345*6789 }}" in html and "83810205" not in html  # shown, not rendered
        _post(client, session, "/api/decide", {"action": "accept", "rows": [0, 1, 2, 3]})
        _post(client, session, "/api/export", {"kind": "csv"})
    assert not marker.exists()


def test_a_page_request_on_100000_rows_renders_only_its_page(tmp_path, monkeypatch):
    from review_fixtures import big_predict_csv

    from fewshot.review import state as state_module

    csv_path = big_predict_csv(tmp_path / "big.csv", 100_000, tmp_path / "imgs")
    with ReviewSession(csv_path, images=tmp_path) as session:
        client = _client(session)
        views = []
        original = state_module.ReviewState.row_view
        monkeypatch.setattr(
            state_module.ReviewState, "row_view", lambda s, i: views.append(i) or original(s, i)
        )
        html = client.get("/", params={"label": "c7", "queue": "uncertain", "sort": "margin", "page": 3}).text
        assert html.count('class="card ') == 48 and len(views) == 48
        views.clear()
        rows = client.get("/api/rows", params={"sort": "confidence", "page": 2000, "per_page": 50}).json()
        assert len(rows["rows"]) == 50 and len(views) == 50 and rows["total"] == 100_000
        assert session.thumbs.made == 0


def test_a_file_name_that_is_not_utf8_is_shown_served_and_decided(tmp_path):
    root = tmp_path / "photos"
    paths = make_images(root, 1)
    odd = root / "red" / os.fsdecode(b"bad\xff.png")
    paths[0].rename(odd)
    rows = label_rows([odd, *paths[1:]])
    rows[1]["labels"] = [os.fsdecode(b"gr\xfcn"), *rows[1]["labels"][1:]]  # a label that is not UTF-8
    columns = "path,status,label,probability,label_1,probability_1,organized_to,error\n"
    lines = [
        f"{r['path']},ok,{r['labels'][0]},{r['probs'][0]:.6f},{r['labels'][0]},{r['probs'][0]:.6f},,"
        for r in rows
    ]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes((columns + "\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    with ReviewSession(csv_path) as session:
        client = _client(session)
        html = client.get("/", params={"queue": "all"}).text
        assert "bad\ufffd.png" in html and "gr\ufffdn" in html
        assert client.get("/image/0").content == odd.read_bytes()
        assert client.get("/api/rows").json()["total"] == 3
        assert _post(client, session, "/api/decide", {"action": "accept", "rows": [0, 1]}).status_code == 200
        _post(client, session, "/api/export", {"kind": "csv"})
    with ReviewSession(csv_path) as again:  # the journal keeps the name exactly
        assert again.state.row_view(0)["decision"] == "accepted"
        exported = Path(again.export("csv")["path"]).read_bytes()
        assert b"bad\xff.png" in exported


def test_on_every_interface_the_page_works_from_its_own_address_only(review):
    session, _ = review
    lan = "http://192.168.1.5:8765"
    client = TestClient(build_app(session, ["*"]), base_url=lan)
    body = {"action": "skip", "rows": [0]}
    assert _post(client, session, "/api/decide", body, Origin="http://evil.example").status_code == 403
    assert _post(client, session, "/api/decide", body, Origin="http://192.168.1.5:9999").status_code == 403
    assert _post(client, session, "/api/decide", body, Origin=lan).status_code == 200
