"""The review without HTTP: reading results, decisions and their semantics, exports, thumbnails,
the refit, and work bounded by the page size on 100,000 rows."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from review_fixtures import (
    CLASSES,
    FOLDERS,
    big_predict_csv,
    label_rows,
    make_images,
    review_workspace,
    write_predict_csv,
)

from fewshot.errors import DataError, FewshotError
from fewshot.review.journal import journal_path
from fewshot.review.results import load_results
from fewshot.review.session import ReviewSession
from fewshot.review.state import Conflict


@pytest.fixture
def workspace(tmp_path):
    return review_workspace(tmp_path)


@pytest.fixture
def session(workspace):
    csv_path, root = workspace
    with ReviewSession(csv_path) as s:
        yield s


def test_label_csv_is_read_with_its_top_k_and_unreadable_rows(workspace):
    csv_path, root = workspace
    r = load_results(csv_path)
    assert r.kind == "label" and len(r) == 13 and r.k == 3
    assert sorted(r.classes) == sorted(CLASSES)
    assert r.status[-1] == "error" and r.predicted[-1] == -1 and "unreadable" in r.errors[12]
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert r.classes[r.predicted[0]] == rows[0]["label"]
    assert r.confidence[0] == pytest.approx(float(rows[0]["probability_1"]), abs=1e-6)
    assert r.margin[0] == pytest.approx(
        float(rows[0]["probability_1"]) - float(rows[0]["probability_2"]), 1e-5
    )


def test_predict_csv_without_top_k_orders_the_margin_as_the_confidence(tmp_path):
    paths = make_images(tmp_path / "imgs", 2)
    r = load_results(write_predict_csv(tmp_path / "p.csv", label_rows(paths), top_k=1))
    assert r.kind == "predict" and r.k == 1
    assert np.allclose(r.margin, 2 * r.confidence - 1)
    r2 = load_results(write_predict_csv(tmp_path / "p2.csv", label_rows(paths), top_k=2))
    assert r2.k == 2 and np.all(r2.margin <= r2.confidence)


def test_label_jsonl_is_read_too(tmp_path):
    paths = make_images(tmp_path / "imgs", 1)
    with open(tmp_path / "l.jsonl", "w") as f:
        for row in label_rows(paths):
            top = [
                {"label": lab, "probability": p} for lab, p in zip(row["labels"], row["probs"], strict=True)
            ]
            item = {
                "path": row["path"],
                "status": "ok",
                "label": row["labels"][0],
                "probability": row["probs"][0],
            }
            f.write(json.dumps({**item, "top": top, "organized_to": None, "error": None}) + "\n")
    r = load_results(tmp_path / "l.jsonl")
    assert len(r) == 3 and r.k == 3 and r.kind == "label"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a,b\n1,2\n", "no 'path' and 'label' columns"),
        ("path,label,probability\n", "has no rows"),
        ("path,label,probability\nx.jpg,cat,__import__('os')\n", "is not a number"),
        ("path,label,probability\nx.jpg,cat,7\n", "not between 0 and 1"),
    ],
)
def test_foreign_or_broken_results_are_refused_in_one_line(tmp_path, text, fragment):
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(DataError, match=fragment):
        load_results(tmp_path / "r.csv")


def test_gallery_pages_filter_sort_and_count(session):
    state = session.state
    counts = {c["label"]: c["count"] for c in state.counts()}
    assert sum(counts.values()) == 12 and set(counts) <= set(CLASSES)
    by_conf = state.page(sort="confidence", per_page=5)
    assert by_conf.total == 12 and by_conf.pages == 3 and len(by_conf.rows) == 5
    conf = state.results.confidence
    assert list(conf[by_conf.rows]) == sorted(conf[by_conf.rows])
    margins = state.results.margin[state.page(sort="margin", per_page=12).rows]
    assert list(margins) == sorted(margins)
    red = state.page(label="red", per_page=50)
    assert len(red.rows) == counts["red"]
    assert all(state.results.classes[state.results.predicted[i]] == "red" for i in red.rows)
    uncertain = state.page(queue="uncertain", threshold=0.6, per_page=50).rows
    assert set(uncertain) == {i for i in range(12) if conf[i] < 0.6}
    assert state.page(page=99, per_page=5).page == 3  # past the end: the last page


def test_accept_correct_skip_undo_and_reopen_where_left_off(workspace):
    csv_path, _ = workspace
    with ReviewSession(csv_path) as s:
        st = s.state
        a = st.decide("accept", [0], tab="t", view={"label": "red", "page": 1, "evil": "x"})
        c = st.decide("correct", [1], label="  a typed label ", tab="t")
        st.decide("skip", [2], tab="t")
        assert [st.row_view(i)["decision"] for i in (0, 1, 2)] == ["accepted", "corrected", "skipped"]
        assert st.row_view(1)["label"] == "a typed label"
        predicted = st.row_view(3)["predicted"]
        assert st.decide("correct", [3], label=predicted, tab="t")["action"] == "accept"
        st.undo(tab="t")
        record, rows = st.undo(tab="t")  # the skip
        assert record["target"] == 3 and rows == [2] and st.row_view(2)["decision"] is None
        assert st.row_view(3)["decision"] is None
        assert st.summary()["reviewed"] == 2
        ids = (a["id"], c["id"])
    with ReviewSession(csv_path) as s:  # a new server: the journal is replayed
        st = s.state
        assert st.row_view(0)["decision"] == "accepted" and st.row_view(1)["label"] == "a typed label"
        assert st.row_view(2)["decision"] is None and st.row_view(1)["decision_id"] == ids[1]
        assert st.last_view() == {"label": "red", "page": 1}  # unknown keys are not recorded
        assert "a typed label" in st.labels


def test_two_tabs_last_decision_wins_stale_base_conflicts_and_each_undoes_its_own(session):
    st = session.state
    first = st.decide("accept", [4], tab="A", base=[None])
    with pytest.raises(Conflict) as err:  # tab B still thinks image 4 is undecided
        st.decide("correct", [4], label="green", tab="B", base=[None])
    assert err.value.rows == [4]
    st.decide("correct", [4], label="green", tab="B", base=[first["id"]])
    assert st.row_view(4)["label"] == "green"
    st.decide("skip", [5], tab="B")
    st.decide("accept", [6], tab="A")
    _, rows = st.undo(tab="A")  # A's own last decision (image 6), not B's later ones
    assert rows == [6] and st.row_view(5)["decision"] == "skipped"
    _, rows = st.undo(target=first["id"], tab="A")  # superseded by B: image 4 stays green
    assert rows == [4] and st.row_view(4)["label"] == "green"
    with pytest.raises(Conflict):
        st.undo(target=first["id"])
    with pytest.raises(FewshotError, match="nothing to undo"):
        st.undo(tab="nobody")


@pytest.mark.parametrize(
    ("action", "rows", "label", "fragment"),
    [
        ("delete", [0], None, "unknown action"),
        ("accept", [], None, "no image"),
        ("accept", [999], None, "no such image"),
        ("accept", ["../x"], None, "no such image"),
        ("accept", [12], None, "unreadable"),
        ("correct", [0], "", "give a label"),
        ("correct", [0], "a\nb", "control characters"),
        ("correct", [0], "x" * 201, "at most 200"),
    ],
)
def test_bad_decisions_are_refused_and_not_journaled(session, action, rows, label, fragment):
    with pytest.raises(FewshotError, match=fragment):
        session.state.decide(action, rows, label)
    assert session.state.journal.records == []


def test_bulk_accept_takes_undecided_rows_of_a_label_above_the_threshold(session):
    st = session.state
    st.decide("skip", [st.page(label="red").rows[-1]])
    conf = st.results.confidence
    expected = [i for i in st.page(label="red", queue="todo").rows if conf[i] >= 0.6]
    rows = st.bulk_rows("red", 0.6)
    assert sorted(rows) == sorted(expected)
    record, accepted = st.bulk_accept("red", 0.6)
    assert accepted == len(record["items"]) == len(rows) and st.summary()["accepted"] == len(rows)
    assert st.bulk_accept("red", 0.6) == (None, 0)  # nothing left to accept
    st.undo(target=record["id"])  # one undo takes the whole bulk back
    assert st.summary()["accepted"] == 0


def test_a_page_of_100000_rows_does_work_bounded_by_the_page(tmp_path, monkeypatch):
    from fewshot.review import state as state_module

    csv_path = big_predict_csv(tmp_path / "big.csv", 100_000, tmp_path / "imgs")
    with ReviewSession(csv_path, images=tmp_path) as s:
        views = []
        original = state_module.ReviewState.row_view
        monkeypatch.setattr(
            state_module.ReviewState, "row_view", lambda self, i: views.append(i) or original(self, i)
        )
        page = s.state.page(label="c3", queue="uncertain", sort="margin", page=2, per_page=48)
        shown = [s.state.row_view(i) for i in page.rows]
        assert len(shown) == 48 and len(views) == 48 and page.total > 1000
        assert [v["margin"] for v in shown] == sorted(v["margin"] for v in shown)
        assert s.thumbs.made == 0  # thumbnails are made when an image is asked for, not per page
        record = s.state.decide("accept", s.state.bulk_rows("c4", 0.9))
        assert len(record["items"]) > 300 and s.state.summary()["accepted"] == len(record["items"])


def test_exports_csv_folder_label_studio_fiftyone(session, tmp_path):
    st = session.state
    st.decide("accept", [0])
    st.decide("correct", [1], label="../../escape")
    st.decide("skip", [2])
    out = Path(session.export("csv")["path"])
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 13 and rows[1]["label"] == "../../escape" and rows[1]["decision"] == "corrected"
    assert rows[2]["decision"] == "skipped" and rows[2]["label"] == rows[2]["predicted"]
    assert rows[0]["decision"] == "accepted" and rows[3]["decision"] == ""
    tree = session.export("folder", "copy")
    dest = Path(tree["dest"])
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert tree["placed"] == 2 and len(files) == 2
    assert all(dest in (dest / f).resolve().parents for f in files)  # "../../escape" stays inside
    assert not any(p.name.startswith(".") for p in dest.parent.iterdir())  # no staging left
    assert Path(session.export("folder", "link")["dest"]).name == "sorted-2"  # never merged
    ls = json.loads(Path(session.export("label-studio")["path"]).read_text())
    assert len(ls) == 12 and ls[1]["annotations"][0]["result"][0]["value"]["choices"] == ["../../escape"]
    assert ls[0]["predictions"][0]["score"] == pytest.approx(float(st.results.confidence[0]), abs=1e-6)
    assert ls[1]["data"]["image"].startswith("/data/local-files/?d=")
    fo = json.loads(Path(session.export("fiftyone")["path"]).read_text())
    key = str(Path(session.relative(1)).with_suffix(""))
    assert fo["labels"][key] == {"label": "../../escape", "confidence": 1.0}
    assert set(fo["classes"]) >= set(CLASSES)


def test_folder_export_move_removes_sources_only_after_the_tree_is_complete(session):
    session.state.decide("accept", [0, 1])
    sources = [session.file(0), session.file(1)]
    tree = session.export("folder", "move")
    assert tree["placed"] == 2 and not any(p.exists() for p in sources)
    assert len([p for p in Path(tree["dest"]).rglob("*") if p.is_file()]) == 2


def test_thumbnails_are_made_once_and_cached(session):
    path = session.file(0)
    first = session.thumbs.get(path)
    again = session.thumbs.get(path)
    assert first == again and session.thumbs.made == 1
    from PIL import Image

    with Image.open(first) as im:
        assert im.format == "JPEG" and max(im.size) <= 192
    os.utime(path, ns=(1, 1))  # an edited image gets a new thumbnail
    session.thumbs.get(path)
    assert session.thumbs.made == 2


def test_a_second_review_of_the_same_results_is_refused(session, workspace):
    with pytest.raises(FewshotError, match="another fewshot run is writing decisions"):
        ReviewSession(workspace[0])


class MeanColour:
    """A stand-in encoder for the refit test: an image's mean colour is its embedding."""

    input_size = (3, 8, 8)
    embed_dim = 3

    def __new__(cls):
        import torch

        class _Mean(torch.nn.Module):
            input_size, embed_dim = cls.input_size, cls.embed_dim

            def encode(self, x):
                return x.mean((2, 3))

            forward = encode

        return _Mean()


def _truth(state) -> list[str]:
    folder_class = {folder: name for name, folder in FOLDERS.items()}
    return [folder_class[Path(state.results.paths[i]).parent.name] for i in range(12)]


def test_refit_on_accepted_images_reranks_the_rest(workspace):
    from fewshot.review.refit import Refitter

    csv_path, _ = workspace
    with ReviewSession(csv_path) as s:
        st = s.state
        with pytest.raises(FewshotError, match="at least two labels"):
            s.refit("simpleshot")
        truth = _truth(st)
        for i in (0, 4, 8):  # one image of each class, with its true label
            st.decide("correct", [i], label=truth[i])
        s._refitter = Refitter()
        s._refitter._encoder = MeanColour()
        report = s.refit("simpleshot")
        assert report["support"] == 3 and report["scored"] == 12 and report["classes"] == 3
        probe = [st.labels[int(st.probe_label[i])] for i in range(12)]
        assert probe == truth  # coloured squares: one example per colour is enough
        disagree = [i for i in range(12) if st.decision[i] == 0 and probe[i] != st.row_view(i)["predicted"]]
        assert disagree and report["disagree"] == len(disagree)
        first = st.page(sort="probe", per_page=len(disagree)).rows
        assert sorted(first) == sorted(disagree)
        assert set(disagree) <= set(st.page(queue="uncertain", threshold=0.0, per_page=50).rows)
        assert st.row_view(disagree[0])["probe"]["label"] == truth[disagree[0]]
        embedded = s._refitter.embedded
        assert s.refit("linear-probe")["method"] == "linear-probe"
        assert s._refitter.embedded == embedded == 12  # each image embedded once


def test_refit_builds_the_default_encoder_from_its_spec(workspace):
    csv_path, _ = workspace
    with ReviewSession(csv_path) as s:  # the shipped Omniglot ProtoNet's encoder, as fewshot predict
        for i, label in ((0, "red"), (4, "green")):
            s.state.decide("correct", [i], label=label)
        report = s.refit("simpleshot")
        assert report["scored"] == 12 and report["classes"] == 2
        assert {s.state.labels[int(c)] for c in s.state.probe_label[:12]} <= {"red", "green"}
        with pytest.raises(FewshotError, match="unknown refit method"):
            s.refit("magic")


def test_journal_path_is_beside_the_results(workspace):
    assert journal_path(workspace[0]).parent == workspace[0].parent


def test_the_files_fewshot_label_and_predict_write_are_read(tmp_path, tiny_checkpoint):
    pytest.importorskip("open_clip")
    from fewshot_cli.app import app
    from typer.testing import CliRunner

    from fewshot.zeroshot.micro_clip import make_folder

    imgs = make_folder(tmp_path / "imgs", per_class=2, size=32)
    micro = ["--model", "micro-clip", "--pretrained", "none", "--workers", "0"]
    for out, top_k in (("l.csv", "2"), ("l.jsonl", "1")):
        argv = ["label", str(imgs), "-l", "red circle,blue square,green cross", "-o", str(tmp_path / out)]
        result = CliRunner().invoke(app, [*argv, "--top-k", top_k, "--threshold", "0.4", *micro])
        assert result.exit_code == 0, result.output
    argv = ["predict", "-c", str(tiny_checkpoint), "-s", str(imgs), "-q", str(imgs), "--top-k", "2"]
    result = CliRunner().invoke(app, [*argv, "-o", str(tmp_path / "p.csv"), "--workers", "0"])
    assert result.exit_code == 0, result.output
    n = len([p for p in imgs.rglob("*.jpg")])
    for name, kind, k in (("l.csv", "label", 2), ("l.jsonl", "label", 1), ("p.csv", "predict", 2)):
        with ReviewSession(tmp_path / name) as s:
            r = s.state.results
            assert (r.kind, r.k, len(r)) == (kind, k, n), name
            assert all(s.file(i) is not None for i in range(n)), name  # every image can be shown
            assert np.all((r.confidence >= 0) & (r.confidence <= 1)) and np.all(r.margin <= r.confidence)
            first = s.state.page(sort="margin").rows[0]
            s.state.decide("accept", [first])
            assert s.state.summary()["accepted"] == 1
    unknown = load_results(tmp_path / "l.csv")
    # below the threshold `fewshot label` says "unknown" but keeps the top class in label_1
    rows = np.flatnonzero(unknown.predicted == unknown.classes.index("unknown"))
    assert len(rows) and all(unknown.classes[unknown.top[i, 0]] != "unknown" for i in rows)
