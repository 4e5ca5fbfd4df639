"""`VectorIndex`: FAISS nearest-neighbour search with string ids and metadata.

FAISS stores vectors under 64-bit integer ids and nothing else. This core gives every item a
string id (a file path, a database key) and a JSON-able metadata dict, keeps the mapping between
them and FAISS's integer ids, normalises vectors for cosine search, and trains index types that
need training. It knows nothing of images, encoders or files (`fewshot.index.index`).

Any FAISS index-factory string works (``Flat``, ``HNSW32``, ``IVF1024,Flat``, ``IVF4096,PQ32``,
``PCA128,IVF256,Flat``...). Index types that cannot store arbitrary ids themselves (Flat, HNSW)
are wrapped in ``IDMap``; IVF types store ids natively.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from fewshot.index.base import (
    EmbeddingIndexError,
    build_faiss_index,
    check_settings,
    faiss_type,
    gpu_available,
    gpu_copy,
    remove_faiss_ids,
    search_faiss,
    set_search_param,
    train_faiss_index,
    training_size,
)
from fewshot.index.inputs import (
    check_new_ids,
    check_present,
    checked_ids,
    checked_metadata,
    item_tables,
    prepared,
)
from fewshot.index.results import SearchResults

Index = TypeVar("Index", bound="VectorIndex")


class VectorIndex:
    """Nearest-neighbour search over ``dim``-d vectors with string ids and metadata.

    Args:
        dim: vector dimension.
        metric: ``cosine`` (vectors normalised, inner product; scores in [-1, 1]), ``ip`` (raw
            inner product) or ``l2`` (squared Euclidean distance).
        factory: a FAISS index-factory string: ``Flat`` (exact), ``HNSW32``, ``IVF1024,Flat``,
            ``IVF4096,PQ32``, ... Types that need training are trained on the first `add`.
        device: ``auto`` (a FAISS GPU build and a GPU when present, else CPU), ``cpu`` or ``cuda``.
        batch_size: queries per FAISS call in `search` (bounds the memory of one call).
    """

    def __init__(
        self,
        dim: int,
        metric: str = "cosine",
        factory: str = "Flat",
        *,
        device: str = "auto",
        batch_size: int = 65536,
    ) -> None:
        check_settings(dim, metric, batch_size, device)
        self.dim = int(dim)
        self.metric = metric
        self.factory = factory
        self.batch_size = batch_size
        self.device = "cuda" if device == "cuda" or (device == "auto" and gpu_available()) else "cpu"
        self._index = build_faiss_index(self.dim, factory, metric)
        self._keys: list[str | None] = []  # FAISS id -> string id (None once removed)
        self._meta: list[dict[str, Any] | None] = []  # FAISS id -> metadata
        # string id -> FAISS id; None until first needed, so a bulk add does not pay for it
        self._lookup: dict[str, int] | None = {}
        self._count = 0  # items in the index
        self._keys_array: np.ndarray | None = None  # cached object array of _keys for searches
        self._gpu_index = None
        self._gpu_resources = None

    @classmethod
    def from_parts(
        cls: type[Index],
        faiss_index: Any,
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        *,
        labels: Sequence[int] | None = None,
        next_label: int | None = None,
        metric: str = "cosine",
        factory: str = "Flat",
        **settings: Any,
    ) -> Index:
        """An index around an existing FAISS index, e.g. one just read back from a file.

        Args:
            faiss_index: a FAISS index of the kind ``cls(faiss_index.d, metric, factory)``
                builds, holding the vector of ``ids[i]`` under the FAISS id ``labels[i]``.
            ids, metadata: the items' string ids and metadata dicts (or None).
            labels: their FAISS ids (default ``0 .. len(ids) - 1``).
            next_label: the FAISS id the next `add` uses (default: one past the largest label);
                the ids of removed items are not reused.
            settings: the other constructor arguments (``device``, ``batch_size``, ...).

        Only the counts and the metric are checked (`fewshot.index.storage` checks the rest).
        """
        index = cls(faiss_index.d, metric, factory, **settings)
        index._keys, index._meta = item_tables(faiss_index, metric, ids, metadata, labels, next_label)
        index._index = faiss_index
        index._lookup = None  # built when first needed
        index._count = len(ids)
        return index

    # state ------------------------------------------------------------------------------------
    @property
    def faiss_index(self):
        """The underlying FAISS index (CPU); its integer ids are internal to this wrapper."""
        return self._index

    def __len__(self) -> int:
        return self._count

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._id_map

    @property
    def _id_map(self) -> dict[str, int]:
        """String id -> FAISS id, built from ``_keys`` on first use after a bulk add."""
        if self._lookup is None:
            self._lookup = {key: label for label, key in enumerate(self._keys) if key is not None}
        return self._lookup

    @property
    def ids(self) -> list[str]:
        """String ids of the items in the index, in insertion order."""
        return [key for key in self._keys if key is not None]

    def metadata(self, item_id: str) -> dict[str, Any]:
        """Metadata stored with `item_id`."""
        if item_id not in self._id_map:
            raise EmbeddingIndexError(f"no item with id {item_id!r} in the index")
        return self._meta[self._id_map[item_id]] or {}

    def items(self) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
        """``(FAISS id, string id, metadata or None)`` of each item, in insertion order."""
        for label, key in enumerate(self._keys):
            if key is not None:
                yield label, key, self._meta[label]

    @property
    def next_label(self) -> int:
        """The FAISS id the next added item gets (the ids of removed items are not reused)."""
        return len(self._keys)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: size, dimension, metric, factory, FAISS type, device."""
        return {
            "items": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "factory": self.factory,
            "faiss_type": faiss_type(self._index),
            "trained": self.is_trained,
            "device": self.device,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, factory={self.factory!r}, "
            f"items={len(self)})"
        )

    # training and adding ----------------------------------------------------------------------
    def min_training_vectors(self) -> int:
        """How many vectors training needs (0 when the index type needs no training)."""
        return 0 if self.is_trained else training_size(self._index)

    def train(self: Index, vectors: Any) -> Index:
        """Train the index on ``(n, dim)`` sample vectors (only needed before adding few vectors)."""
        array = prepared(vectors, self.dim, self.metric, "training vectors")
        train_faiss_index(self._index, array, self.min_training_vectors(), self.factory)
        return self

    def add(
        self: Index,
        vectors: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> Index:
        """Add ``(n, dim)`` vectors under string `ids` with optional per-item `metadata`.

        Args:
            ids: one unique string per vector, not already in the index; default: the running
                number of the vector as a string (``"0"``, ``"1"``, ...).
            metadata: one JSON-able dict (or None) per vector: path, label, any fields.

        The first add trains an index type that needs training on the vectors given.
        """
        array = prepared(vectors, self.dim, self.metric, "vectors")
        n = array.shape[0]
        start = len(self._keys)
        ids = checked_ids(ids, n, start)
        if self._count:  # an empty index cannot clash (and needs no id map for it)
            check_new_ids(ids, self._id_map)
        metas = checked_metadata(metadata, n)
        if n == 0:
            return self
        if not self.is_trained:
            self.train(array)
        # One call: the vectors are in memory already, and adding in pieces makes a Flat index
        # grow (and copy) its storage again and again.
        self._index.add_with_ids(array, np.arange(start, start + n, dtype=np.int64))
        self._keys.extend(ids)
        self._meta.extend(metas)
        self._count += n
        if start == 0:
            self._lookup = None  # built when first needed
        elif self._lookup is not None:
            self._lookup.update(zip(ids, range(start, start + n), strict=True))
        self._changed()
        return self

    def remove(self, ids: Sequence[str]) -> int:
        """Remove the items with these string ids; returns how many were removed.

        Raises:
            EmbeddingIndexError: an id is not in the index, or the index type cannot remove (HNSW).
        """
        ids = [ids] if isinstance(ids, str) else list(ids)
        check_present(ids, self._id_map)
        labels = np.array(sorted({self._id_map[i] for i in ids}), dtype=np.int64)
        if labels.size == 0:
            return 0
        remove_faiss_ids(self._index, labels, self.factory)
        for label in labels.tolist():
            del self._id_map[self._keys[label]]
            self._keys[label] = None
            self._meta[label] = None
        self._count -= int(labels.size)
        self._changed()
        return int(labels.size)

    def _changed(self) -> None:
        self._keys_array = None
        self._gpu_index = None

    # searching -----------------------------------------------------------------------------
    def set_search_params(self, nprobe: int | None = None, efSearch: int | None = None) -> None:  # noqa: N803
        """Search-time knobs, kept until changed: IVF ``nprobe`` (lists visited), HNSW ``efSearch``.

        Raises:
            EmbeddingIndexError: the knob does not apply to this index type.
        """
        for name, value in (("nprobe", nprobe), ("efSearch", efSearch)):
            if value is not None:
                set_search_param(self._index, name, value, self.factory)
        self._gpu_index = None

    def _search_index(self):
        if self.device != "cuda":
            return self._index
        if self._gpu_index is None:
            self._gpu_index, self._gpu_resources = gpu_copy(self._index, self._gpu_resources)
        return self._gpu_index

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        nprobe: int | None = None,
        efSearch: int | None = None,  # noqa: N803
    ) -> SearchResults:
        """The `k` nearest items to each of ``(nq, dim)`` queries (a single ``(dim,)`` vector works).

        `nprobe`/`efSearch`, when given, are set as in `set_search_params` before searching.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise EmbeddingIndexError(f"k must be a positive integer; got {k!r}")
        array = prepared(queries, self.dim, self.metric, "queries")
        if nprobe is not None or efSearch is not None:
            self.set_search_params(nprobe=nprobe, efSearch=efSearch)
        scores, labels = search_faiss(self._search_index(), array, int(k), self.batch_size)
        if self._keys_array is None:
            self._keys_array = np.array([*self._keys, None], dtype=object)  # index -1 -> None
        return SearchResults(self._keys_array[labels], scores, labels, self._meta)  # -1 picks None
