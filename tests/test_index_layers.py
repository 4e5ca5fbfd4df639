"""The index package's layers: no import circle, a core that knows nothing of images or files,
and `from_parts`, the constructor loading goes through."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import fewshot.index
from fewshot.index import EmbeddingIndex, EmbeddingIndexError
from fewshot.index.core import VectorIndex
from fewshot.index.storage import read_index, save_index

pytestmark = pytest.mark.usefixtures("one_faiss_thread")

PACKAGE = Path(fewshot.index.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module `path` imports: at the top, in functions, under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    """Module of fewshot.index -> the modules of fewshot.index it imports."""
    modules = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return {
        name: {i.rsplit(".", 1)[1] for i in _imports(path) if i.startswith("fewshot.index.")}
        & set(modules) - {name}
        for name, path in modules.items()
    }


def test_no_import_circle_in_the_index_package():
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import circle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_core_knows_nothing_of_images_encoders_or_files():
    graph = _graph()
    below_core = {"core"} | graph["core"]
    assert below_core == {"core", "base", "inputs", "results"}
    for name in below_core:
        assert graph[name] <= below_core, (name, graph[name])
        imported = _imports(PACKAGE / f"{name}.py")
        assert not {i for i in imported if i.split(".")[0] in ("torch", "torchvision", "PIL")}, name
        assert not {i for i in imported if i.startswith(("fewshot.encoders", "fewshot.data"))}, name


def _index(factory: str = "Flat") -> VectorIndex:
    rng = np.random.default_rng(0)
    index = VectorIndex(8, "l2", factory, device="cpu")
    index.add(rng.standard_normal((50, 8)), metadata=[{"n": i} for i in range(50)])
    index.remove(["3", "7"])
    return index


@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat"])
def test_from_parts_rebuilds_an_index_from_its_public_state(factory):
    index = _index(factory)
    labels, ids, metadata = zip(*index.items(), strict=True)
    clone = VectorIndex.from_parts(
        index.faiss_index,
        list(ids),
        list(metadata),
        labels=list(labels),
        next_label=index.next_label,
        metric="l2",
        factory=factory,
        device="cpu",
    )
    queries = np.random.default_rng(1).standard_normal((5, 8))
    assert clone.search(queries, 4).to_json() == index.search(queries, 4).to_json()
    assert clone.ids == index.ids and clone.metadata("10") == {"n": 10} and "3" not in clone
    assert clone.add(queries[:1]).ids[-1] == "50"  # FAISS ids of removed items are not reused


def test_from_parts_refuses_parts_that_disagree():
    index = _index()
    with pytest.raises(EmbeddingIndexError, match="for a FAISS index of 48 vectors"):
        VectorIndex.from_parts(index.faiss_index, ["a"], [None], metric="l2", device="cpu")
    with pytest.raises(EmbeddingIndexError, match="metric"):
        VectorIndex.from_parts(index.faiss_index, index.ids, [None] * 48, metric="cosine", device="cpu")


def test_embedding_index_from_parts_keeps_the_encoder_record():
    record = {"name": "conv4", "config": {}}
    index = EmbeddingIndex.from_parts(
        VectorIndex(4, device="cpu").faiss_index, [], [], encoder_record=record, source="here"
    )
    assert isinstance(index, EmbeddingIndex)
    assert index.encoder_name == "conv4" and index.recorded_encoder == record


def test_storage_saves_and_reads_a_core_index(tmp_path):
    index = _index()
    save_index(index, tmp_path)
    saved = read_index(tmp_path)
    assert (saved.dim, saved.metric, saved.encoder, saved.next_label) == (8, "l2", None, 50)
    back = EmbeddingIndex.load(tmp_path, device="cpu")
    assert back.ids == index.ids and back.next_label == 50 and back.encoder_name is None
