"""EmbeddingIndex: exact and approximate search, ids and metadata, removal, save/load safety."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fewshot.errors import CheckpointError, FewshotError
from fewshot.index import EmbeddingIndex, EmbeddingIndexError, recall_at_k, storage

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def random_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def clustered(n: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 3
    return (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def brute_force(data: np.ndarray, queries: np.ndarray, k: int, metric: str):
    if metric == "cosine":
        data = data / np.linalg.norm(data, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        scores = ((queries[:, None, :].astype(np.float64) - data[None].astype(np.float64)) ** 2).sum(-1)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    else:
        scores = queries.astype(np.float64) @ data.T.astype(np.float64)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_flat_equals_numpy_brute_force(metric):
    data, queries = random_vectors(600), random_vectors(25, seed=1)
    index = EmbeddingIndex(32, metric=metric).add(data, ids=[f"item{i}" for i in range(600)])
    results = index.search(queries, k=10)
    order, scores = brute_force(data, queries, 10, metric)
    assert results.ids.tolist() == [[f"item{i}" for i in row] for row in order]
    np.testing.assert_allclose(results.scores, scores, rtol=1e-4, atol=1e-4)
    assert results[3][0].id == f"item{order[3, 0]}"


@pytest.mark.parametrize(("factory", "knobs"), [("HNSW32", {"efSearch": 256}), ("IVF64,Flat", {"nprobe": 8})])
def test_approximate_indexes_reach_recall(factory, knobs):
    data, queries = clustered(5000), clustered(200, seed=1)
    exact = EmbeddingIndex(32, factory="Flat").add(data)
    approx = EmbeddingIndex(32, factory=factory).add(data)
    assert approx.is_trained
    truth = exact.search(queries, 10).labels
    found = approx.search(queries, 10, **knobs).labels
    assert recall_at_k(found, truth) >= 0.9


def test_ivf_needs_enough_vectors_to_train():
    index = EmbeddingIndex(8, factory="IVF64,Flat")
    with pytest.raises(EmbeddingIndexError, match="at least 64 vectors"):
        index.add(random_vectors(20, 8))
    assert len(index) == 0 and not index.is_trained
    pq = EmbeddingIndex(8, factory="IVF4,PQ2")  # 8-bit codes: 256 centroids per sub-quantizer
    with pytest.raises(EmbeddingIndexError, match="at least 256"):
        pq.add(random_vectors(100, 8))
    assert len(pq) == 0


def test_no_hit_slots_are_empty():
    index = EmbeddingIndex(4).add(np.eye(4)[:3], ids=["a", "b", "c"])
    results = index.search(np.eye(4)[:1], k=5)
    assert results.ids[0, 3:].tolist() == [None, None]
    assert np.isnan(results.scores[0, 3:]).all() and (results.labels[0, 3:] == -1).all()
    assert [hit.id for hit in results[0]] == ["a", "b", "c"] or results[0][0].id == "a"
    assert len(results[0]) == 3
    assert EmbeddingIndex(4).search(np.eye(4), k=2)[0] == []
    assert EmbeddingIndex(4, factory="IVF4,Flat").search(np.eye(4), k=2)[1] == []


def test_string_ids_and_metadata():
    index = EmbeddingIndex(4, metric="l2")
    meta = [{"path": "/x/ünï cödé.jpg", "label": "cat", "size": [3, 4]}, None, {"score": 0.5}]
    index.add(np.eye(4)[:3], ids=["ünï", "b", "c/d"], metadata=meta)
    hits = index.search(np.eye(4)[0], k=3)[0]
    assert hits[0].id == "ünï" and hits[0].metadata == meta[0] and hits[0].score == pytest.approx(0)
    assert {h.id: h.metadata for h in hits}["b"] == {}
    assert index.metadata("c/d") == {"score": 0.5}
    with pytest.raises(EmbeddingIndexError, match="duplicate id"):
        index.add(np.eye(4)[:2], ids=["x", "x"])
    with pytest.raises(EmbeddingIndexError, match="already in the index"):
        index.add(np.eye(4)[:1], ids=["b"])
    with pytest.raises(EmbeddingIndexError, match="ids must be strings"):
        index.add(np.eye(4)[:1], ids=[7])
    with pytest.raises(EmbeddingIndexError, match="JSON"):
        index.add(np.eye(4)[:1], ids=["y"], metadata=[{"f": object()}])
    with pytest.raises(EmbeddingIndexError, match="NaN"):
        index.add(np.full((1, 4), np.nan), ids=["z"])
    assert len(index) == 3


def test_default_ids_run_on_across_adds_and_removals():
    index = EmbeddingIndex(8).add(random_vectors(5, 8))  # a bulk add builds no id map yet
    assert len(index) == 5 and "4" in index and "5" not in index
    index.add(random_vectors(3, 8, seed=1))
    assert index.ids == [str(i) for i in range(8)] and index.metadata("7") == {}
    index.remove(["0", "6"])
    index.add(random_vectors(1, 8, seed=2))  # numbers are never reused
    assert len(index) == 7 and "8" in index and "0" not in index and "6" not in index
    with pytest.raises(EmbeddingIndexError, match="already in the index"):
        index.add(random_vectors(1, 8), ids=["3"])


def test_dimension_mismatch_and_bad_arguments():
    index = EmbeddingIndex(8)
    with pytest.raises(EmbeddingIndexError, match="dimension 4"):
        index.add(random_vectors(3, 4))
    index.add(torch.randn(5, 8))  # torch tensors are accepted
    with pytest.raises(EmbeddingIndexError, match="dimension 6"):
        index.search(random_vectors(2, 6))
    with pytest.raises(EmbeddingIndexError, match="unknown metric"):
        EmbeddingIndex(8, metric="hamming")
    with pytest.raises(EmbeddingIndexError, match="FAISS cannot build"):
        EmbeddingIndex(8, factory="NoSuchIndex")
    with pytest.raises(EmbeddingIndexError, match="efSearch does not apply"):
        index.search(random_vectors(1, 8), efSearch=10)
    assert issubclass(EmbeddingIndexError, FewshotError)


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat"])
def test_remove(factory):
    data = clustered(800, 16)
    index = EmbeddingIndex(16, factory=factory).add(data, ids=[f"v{i}" for i in range(800)])
    index.set_search_params(nprobe=16) if factory.startswith("IVF") else None
    assert index.search(data[5], k=1)[0][0].id == "v5"
    assert index.remove(["v5", "v6"]) == 2
    assert len(index) == 798 and "v5" not in index and index.faiss_index.ntotal == 798
    found = index.search(data[[5, 6]], k=10).ids
    assert "v5" not in found and "v6" not in found
    assert index.search(data[7], k=1)[0][0].id == "v7"
    with pytest.raises(EmbeddingIndexError, match="not in the index"):
        index.remove(["v5"])
    index.add(data[5], ids=["v5"])  # a removed id can come back
    assert index.search(data[5], k=1)[0][0].id == "v5"


def test_hnsw_refuses_removal_and_stays_intact():
    index = EmbeddingIndex(8, factory="HNSW32").add(random_vectors(50, 8))
    with pytest.raises(EmbeddingIndexError, match="does not support removal"):
        index.remove(["3"])
    assert len(index) == 50 and "3" in index and index.search(random_vectors(50, 8)[3], k=1)[0][0].id == "3"


@pytest.mark.parametrize(("factory", "metric"), [("Flat", "cosine"), ("HNSW32", "l2"), ("IVF8,Flat", "ip")])
def test_save_load_round_trip(tmp_path, factory, metric):
    data = clustered(600, 16)
    ids = [f"img/{i:04d}.jpg" for i in range(600)]
    index = EmbeddingIndex(16, metric, factory).add(data, ids=ids, metadata=[{"i": i} for i in range(600)])
    if factory == "Flat":
        index.remove(ids[:10])
    index.save(tmp_path / "ix")
    loaded = EmbeddingIndex.load(tmp_path / "ix")
    assert (loaded.dim, loaded.metric, loaded.factory, len(loaded)) == (16, metric, factory, len(index))
    before, after = index.search(data[:20], 5), loaded.search(data[:20], 5)
    assert after.ids.tolist() == before.ids.tolist()
    np.testing.assert_array_equal(after.scores, before.scores)
    assert loaded.metadata(ids[42]) == {"i": 42}
    loaded.add(data[:1] + 0.01, ids=["new"])  # FAISS ids continue after the saved ones
    assert "new" in loaded and len(loaded) == len(index) + 1
    if metric != "ip":  # under inner product a vector need not be its own nearest neighbour
        assert loaded.search(data[0] + 0.01, k=1).ids[0, 0] == "new"
    assert [p.name for p in (tmp_path / "ix").iterdir() if p.suffix == ".faiss"].__len__() == 1


def test_resave_replaces_files(tmp_path):
    index = EmbeddingIndex(4).add(np.eye(4)[:2], ids=["a", "b"])
    index.save(tmp_path)
    index.add(np.eye(4)[2:], ids=["c", "d"])
    index.save(tmp_path)
    assert len(list(tmp_path.glob("*.faiss"))) == 1
    assert EmbeddingIndex.load(tmp_path).ids == ["a", "b", "c", "d"]


@pytest.mark.parametrize("where", ["faiss file", "sidecar"])
def test_interrupted_save_keeps_previous_index(tmp_path, monkeypatch, where):
    index = EmbeddingIndex(4).add(np.eye(4)[:2], ids=["a", "b"])
    index.save(tmp_path)
    index.add(np.eye(4)[2:], ids=["c", "d"])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    if where == "faiss file":

        def half_written(path, payload):
            path.write_bytes(bytes(payload[: len(payload) // 2]))
            crash()

        monkeypatch.setattr(storage, "_write_faiss_file", half_written)
    else:
        monkeypatch.setattr(storage.os, "replace", crash)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(KeyboardInterrupt):
        index.save(tmp_path)
    monkeypatch.undo()
    assert EmbeddingIndex.load(tmp_path).ids == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no new FAISS file, no temporary


def _edit_sidecar(directory, change):
    path = directory / storage.SIDECAR
    sidecar = json.loads(path.read_text())
    change(sidecar)
    path.write_text(json.dumps(sidecar))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(version=99), "format version 99"),
        (lambda s: s.update(format="other"), "not a fewshot index"),
        (lambda s: s["items"]["ids"].pop(), "labels, 2 ids"),
        (lambda s: s["items"]["ids"].__setitem__(1, "a"), "distinct strings"),
        (lambda s: s.update(faiss_file="../../etc/passwd"), "bad FAISS file name"),
        (lambda s: s.update(dim=5), "5-d"),
        (lambda s: s.update(metric="l2"), "metric"),
        (lambda s: s.update(metric="nope"), "unknown metric"),
        (lambda s: s.update(faiss_sha256="0" * 64), "checksum"),
        (
            lambda s: s.update(
                next_label=4, items={"labels": [0, 1, 2, 3], "ids": list("abcx"), "metadata": [None] * 4}
            ),
            "holds 3",
        ),
    ],
)
def test_damaged_sidecar_is_refused(tmp_path, change, message):
    EmbeddingIndex(4).add(np.eye(4)[:3], ids=["a", "b", "c"]).save(tmp_path)
    _edit_sidecar(tmp_path, change)
    with pytest.raises(CheckpointError, match=message):
        EmbeddingIndex.load(tmp_path)


def test_damaged_files_are_refused(tmp_path):
    EmbeddingIndex(4).add(np.eye(4)[:3], ids=["a", "b", "c"]).save(tmp_path)
    sidecar = tmp_path / storage.SIDECAR
    text = sidecar.read_bytes()
    sidecar.write_bytes(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        EmbeddingIndex.load(tmp_path)
    sidecar.write_bytes(text)
    faiss_file = next(tmp_path.glob("*.faiss"))
    raw = bytearray(faiss_file.read_bytes())
    raw[-5] ^= 0xFF
    faiss_file.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged"):
        EmbeddingIndex.load(tmp_path)
    faiss_file.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        EmbeddingIndex.load(tmp_path)
    with pytest.raises(CheckpointError, match="no saved index"):
        EmbeddingIndex.load((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no index directory"):
        EmbeddingIndex.load(tmp_path / "absent")


def test_import_fewshot_does_not_import_faiss():
    code = "import sys, fewshot; fewshot.EmbeddingIndex; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_inputs_are_not_modified():
    data, tensor = random_vectors(20, 8), torch.randn(20, 8)
    data_copy, tensor_copy = data.copy(), tensor.clone()
    index = EmbeddingIndex(8).add(data).add(tensor)
    index.search(data)
    index.search(tensor)
    np.testing.assert_array_equal(data, data_copy)
    assert torch.equal(tensor, tensor_copy)
