"""Ground floor of the index package: its error, the metrics, and the FAISS calls it makes.

Nothing here knows of an index object; `fewshot.index.core` and the layers above build on it.
FAISS is imported on first use, not when this module is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fewshot.errors import FewshotError

METRICS = ("cosine", "ip", "l2")
DEVICES = ("auto", "cpu", "cuda")


class EmbeddingIndexError(FewshotError):
    """Bad use of an `EmbeddingIndex` (wrong shapes, unknown ids, impossible operations)."""


def faiss_module():
    """The `faiss` module, imported on first use."""
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a dependency
        raise FewshotError("faiss is not installed: pip install faiss-cpu") from err
    return faiss


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees at least one GPU."""
    faiss = faiss_module()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def faiss_metric(metric: str) -> int:
    """The FAISS metric constant behind one of `METRICS` (cosine is inner product on unit rows)."""
    faiss = faiss_module()
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def faiss_message(err: BaseException) -> str:
    """The useful part of a FAISS C++ exception message."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    if "failed: " in text:
        text = text.split("failed: ", 1)[1]
    elif ": " in text and text.startswith("Error in"):
        text = text.rsplit(": ", 1)[1]
    return text


def check_settings(dim: Any, metric: str, batch_size: int, device: str) -> None:
    """Refuse index settings that cannot work, before any FAISS index is built."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise EmbeddingIndexError(f"dim must be a positive integer; got {dim!r}")
    if metric not in METRICS:
        raise EmbeddingIndexError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
    if batch_size < 1:
        raise EmbeddingIndexError(f"batch_size must be >= 1; got {batch_size}")
    if device not in DEVICES:
        raise EmbeddingIndexError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "cuda" and not gpu_available():
        raise EmbeddingIndexError("device 'cuda' was asked for but FAISS has no GPU support or sees no GPU")


def build_faiss_index(dim: int, factory: str, metric: str) -> Any:
    """An empty FAISS index from a factory string, wrapped in ``IDMap`` unless it stores ids itself."""
    faiss = faiss_module()
    if not isinstance(factory, str) or not factory.strip():
        raise EmbeddingIndexError(
            f"factory must be a FAISS index-factory string like 'Flat'; got {factory!r}"
        )
    try:
        index = faiss.index_factory(dim, factory, faiss_metric(metric))
    except RuntimeError as err:
        raise EmbeddingIndexError(
            f"FAISS cannot build index {factory!r} for {dim}-d vectors: {faiss_message(err)}"
        ) from err
    if faiss.try_extract_index_ivf(index) is None and not isinstance(index, faiss.IndexIDMap):
        index = faiss.index_factory(dim, f"IDMap,{factory}", faiss_metric(metric))
    return index


def faiss_type(index: Any) -> str:
    """The class name of the FAISS index inside an ``IDMap`` wrapper (or of `index` itself)."""
    faiss = faiss_module()
    inner = index.index if isinstance(index, faiss.IndexIDMap) else index
    return type(faiss.downcast_index(inner)).__name__


def training_size(index: Any) -> int:
    """How many vectors training an untrained FAISS index needs: its IVF lists and PQ centroids."""
    faiss = faiss_module()
    needed = 1
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        needed = max(needed, int(ivf.nlist))
        pq = getattr(faiss.downcast_index(ivf), "pq", None)
        if pq is not None:
            needed = max(needed, int(pq.ksub))
    return needed


def set_search_param(index: Any, name: str, value: int, factory: str) -> None:
    """Set a FAISS search-time knob (``nprobe``, ``efSearch``) on `index`, built from `factory`."""
    if int(value) < 1:
        raise EmbeddingIndexError(f"{name} must be >= 1; got {value}")
    try:
        faiss_module().ParameterSpace().set_index_parameter(index, name, int(value))
    except RuntimeError as err:
        raise EmbeddingIndexError(f"{name} does not apply to index {factory!r}") from err


def train_faiss_index(index: Any, vectors: np.ndarray, needed: int, factory: str) -> None:
    """Train `index` (built from `factory`) on `vectors`, of which it needs at least `needed`."""
    if vectors.shape[0] < needed:
        raise EmbeddingIndexError(
            f"index {factory!r} needs at least {needed} vectors to train; got {vectors.shape[0]}. "
            "Add more vectors at once, train on a larger sample, or use fewer lists (e.g. IVF64) or Flat"
        )
    try:
        index.train(vectors)
    except RuntimeError as err:
        raise EmbeddingIndexError(f"training index {factory!r} failed: {faiss_message(err)}") from err


def remove_faiss_ids(index: Any, labels: np.ndarray, factory: str) -> None:
    """Remove the vectors with FAISS ids `labels` (all present) from `index`, built from `factory`."""
    try:
        removed = index.remove_ids(labels)
    except RuntimeError as err:
        raise EmbeddingIndexError(
            f"index type {factory!r} does not support removal ({faiss_message(err)}); "
            "rebuild the index without those items, or use Flat or IVF"
        ) from err
    if removed != labels.size:  # pragma: no cover - would mean the caller's id map is out of sync
        raise RuntimeError(f"FAISS removed {removed} of {labels.size} vectors")


def gpu_copy(index: Any, resources: Any = None) -> tuple[Any, Any]:
    """A copy of `index` on GPU 0 and the FAISS GPU resources it uses (`resources`, or new ones);
    `index` itself when its type has no GPU version (e.g. HNSW)."""
    faiss = faiss_module()
    try:
        resources = resources or faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(resources, 0, index), resources
    except RuntimeError:
        return index, resources


def search_faiss(index: Any, queries: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and FAISS ids ``(nq, k)`` of the `k` nearest vectors to each query, `batch_size`
    queries per FAISS call. Slots with no hit score NaN under the id -1; an untrained index
    (nothing added yet) has no hits."""
    nq = queries.shape[0]
    if not index.is_trained:
        return np.full((nq, k), np.nan, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
    if nq <= batch_size:
        scores, labels = index.search(queries, k)
    else:
        scores = np.empty((nq, k), dtype=np.float32)
        labels = np.empty((nq, k), dtype=np.int64)
        for lo in range(0, nq, batch_size):
            hi = min(nq, lo + batch_size)
            scores[lo:hi], labels[lo:hi] = index.search(queries[lo:hi], k)
    empty = labels < 0
    if empty.any():
        scores[empty] = np.nan
    return scores, labels
