"""`fewshot index build --from-embeddings DIR --shards N`: trained once on a sample, shards
added separately, merged on disk (`OnDiskInvertedLists`) or served together (`IndexShards`);
the same neighbours and scores as one index of the same factory with every vector added in
order; string ids and metadata carried through."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from fewshot.errors import FewshotError  # noqa: E402
from fewshot.index import EmbeddingIndex  # noqa: E402
from fewshot.index.core import VectorIndex  # noqa: E402
from fewshot.scale.sharded_index import build_sharded, load_sharded, trained_index  # noqa: E402
from fewshot.scale.shards import ShardPlan, finished_shards, manifest_document, write_shard  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_faiss_thread")
DIM, ROWS, PER_SHARD = 8, 600, 150


def embedding_folder(out: Path, seed: int = 0) -> np.ndarray:
    """Four shards of clustered vectors (as `fewshot embed` writes them), one unreadable row."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, DIM)) * 4
    vectors = (centres[rng.integers(0, 12, ROWS)] + rng.normal(size=(ROWS, DIM))).astype(np.float32)
    plans = [ShardPlan(n, n * PER_SHARD, PER_SHARD) for n in range(ROWS // PER_SHARD)]
    done = {}
    for plan in plans:
        rows = [
            {"id": f"img/{i:04d}.png", "path": f"/data/{i:04d}.png", "embedding": vectors[i],
             "error": None, "metadata": {"label": f"c{i % 3}"}}
            for i in range(plan.start, plan.start + plan.rows)
        ]  # fmt: skip
        if plan.number == 1:
            rows[0] = {**rows[0], "embedding": None, "error": "not an image"}
        done[plan.number] = write_shard(out, plan, rows, DIM)
    settings = {"dim": DIM, "encoder": {"index_record": None}}
    (out / "embed.json").write_bytes(manifest_document(settings, plans, done, "done"))
    return np.delete(vectors, PER_SHARD, axis=0)


def reference(folder: Path, vectors: np.ndarray, factory: str) -> VectorIndex:
    """One index of `factory`: trained on the same sample, every vector added in order."""
    files = [(p, n) for p, n in finished_shards(folder) if n]
    index = VectorIndex(DIM, "cosine", factory, device="cpu")
    index._index = trained_index(files, factory, "cosine", DIM, 300, 0)
    ids = [f"img/{i:04d}.png" for i in range(ROWS) if i != PER_SHARD]
    return index.add(vectors, ids)


@pytest.mark.parametrize(
    "layout,factory", [("ondisk", "IVF16,Flat"), ("shards", "IVF16,Flat"), ("shards", "Flat")]
)
def test_sharded_build_equals_a_single_build(tmp_path, layout, factory):
    folder = tmp_path / "emb"
    folder.mkdir()
    vectors = embedding_folder(folder)
    out = tmp_path / "ix"
    summary = build_sharded(folder, out, factory=factory, shards=3, layout=layout, train_size=300)
    assert summary["items"] == ROWS - 1 and summary["shards"] == 3
    built = EmbeddingIndex.load(out, device="cpu") if layout == "ondisk" else load_sharded(out)
    single = reference(folder, vectors, factory)
    queries = vectors[::7]
    for nprobe in [1, 4] if "IVF" in factory else [None]:
        a, b = built.search(queries, k=10, nprobe=nprobe), single.search(queries, k=10, nprobe=nprobe)
        assert (a.ids == b.ids).all()
        np.testing.assert_array_equal(a.scores, b.scores)
    assert built.metadata("img/0003.png") == {"label": "c0"} and "img/0150.png" not in built
    if layout == "ondisk":
        names = sorted(p.name for p in out.iterdir())
        assert (
            names[0].startswith("index-")
            and names[1:] == ["index.json", names[2]]
            and names[2].endswith(".ivfdata")
        )


def test_ondisk_needs_an_ivf_factory_and_a_complete_folder(tmp_path):
    folder = tmp_path / "emb"
    folder.mkdir()
    embedding_folder(folder)
    with pytest.raises(FewshotError, match="--layout ondisk merges inverted lists"):
        build_sharded(folder, tmp_path / "ix", factory="HNSW16", layout="ondisk")
    doc = (folder / "embed.json").read_text().replace('"done"', '"running"')
    (folder / "embed.json").write_text(doc)
    with pytest.raises(FewshotError, match="not complete"):
        build_sharded(folder, tmp_path / "ix", factory="IVF16,Flat")


def test_cli_builds_from_embeddings_and_searches(tmp_path):
    import json
    import subprocess

    folder = tmp_path / "emb"
    folder.mkdir()
    embedding_folder(folder)
    argv = [sys.executable, "-m", "fewshot", "index", "build", "--from-embeddings", str(folder),
            "--out", str(tmp_path / "ix"), "--factory", "IVF16,Flat", "--shards", "2", "--json"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["items"] == ROWS - 1 and summary["layout"] == "ondisk"
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already holds an index" in again.stderr
