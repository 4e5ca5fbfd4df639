"""`EmbeddingIndex`: FAISS nearest-neighbour search with string ids, metadata and safe persistence.

FAISS stores vectors under 64-bit integer ids and nothing else. This wrapper gives every item a
string id (a file path, a database key) and a JSON-able metadata dict, keeps the mapping between
them and FAISS's integer ids, normalises vectors for cosine search, trains index types that need
training, and saves/loads the lot atomically (see `fewshot.index.storage`).

Any FAISS index-factory string works (``Flat``, ``HNSW32``, ``IVF1024,Flat``, ``IVF4096,PQ32``,
``PCA128,IVF256,Flat``...). Index types that cannot store arbitrary ids themselves (Flat, HNSW)
are wrapped in ``IDMap``; IVF types store ids natively.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fewshot.errors import FewshotError

if TYPE_CHECKING:
    import os

    from fewshot.encoders.base import Encoder

METRICS = ("cosine", "ip", "l2")


class EmbeddingIndexError(FewshotError):
    """Bad use of an `EmbeddingIndex` (wrong shapes, unknown ids, impossible operations)."""


def _faiss():
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - faiss-cpu is a dependency
        raise FewshotError("faiss is not installed: pip install faiss-cpu") from err
    return faiss


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees at least one GPU."""
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@dataclass(frozen=True)
class Hit:
    """One search result: the item's string id, its score and its metadata."""

    id: str
    score: float
    metadata: dict[str, Any]


class SearchResults(Sequence[list[Hit]]):
    """Results of searching ``nq`` queries for ``k`` neighbours each.

    ``results[i]`` is the list of `Hit` for query ``i``, best first, without the empty slots
    FAISS leaves when fewer than ``k`` items could be found.

    Attributes:
        ids: ``(nq, k)`` object array of string ids; None in slots with no hit.
        scores: ``(nq, k)`` float32; cosine similarity or inner product (higher is better) for
            metrics ``cosine``/``ip``, squared Euclidean distance (lower is better) for ``l2``;
            NaN in slots with no hit.
        labels: ``(nq, k)`` int64 FAISS ids; -1 in slots with no hit.
    """

    def __init__(self, ids: np.ndarray, scores: np.ndarray, labels: np.ndarray, metadata: list) -> None:
        self.ids, self.scores, self.labels = ids, scores, labels
        self._metadata = metadata

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self.labels[i]
        return [
            Hit(self.ids[i, j], float(self.scores[i, j]), self._metadata[row[j]] or {})
            for j in range(row.shape[0])
            if row[j] >= 0
        ]

    @property
    def metadata(self) -> list[list[dict[str, Any]]]:
        """Per query, the metadata of each hit (no-hit slots dropped)."""
        return [[hit.metadata for hit in hits] for hits in self]

    def to_json(self) -> list[list[dict[str, Any]]]:
        """JSON-able form: per query, a list of ``{"id", "score", "metadata"}``."""
        return [[{"id": h.id, "score": h.score, "metadata": h.metadata} for h in hits] for hits in self]


def _as_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """Any array-like (NumPy, torch, lists) -> C-contiguous float32 ``(n, dim)``."""
    if hasattr(vectors, "detach"):  # a torch tensor, without importing torch
        vectors = vectors.detach().cpu().numpy()
    array = np.asarray(vectors)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise EmbeddingIndexError(f"{what} must be a 2-d array (n, {dim}); got shape {array.shape}")
    if array.shape[1] != dim:
        raise EmbeddingIndexError(
            f"{what} have dimension {array.shape[1]} but the index holds {dim}-d vectors"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise EmbeddingIndexError(f"{what} must be numbers; got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_finite(array: np.ndarray, what: str, unit_rows: bool = False) -> None:
    """Refuse NaN or infinite values. Row sums carry any NaN or inf along without the n*dim
    boolean temporary of ``np.isfinite(array).all()``; float64 keeps finite rows from
    overflowing, except for unit-length rows (cosine), whose float32 sums cannot overflow."""
    sums = array.sum(axis=1) if unit_rows else array.sum(axis=1, dtype=np.float64)
    if not np.isfinite(sums).all():
        raise EmbeddingIndexError(f"{what} contain NaN or infinite values")


def _normalised(array: np.ndarray, source: Any) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), never modifying the caller's `source`."""
    if array is source or array.base is not None:  # may be the caller's memory (or a torch view)
        array = array.copy()
    _faiss().normalize_L2(array)  # in place, multi-threaded
    return array


class EmbeddingIndex:
    """Nearest-neighbour search over ``dim``-d vectors with string ids and metadata.

    Args:
        dim: vector dimension.
        metric: ``cosine`` (vectors normalised, inner product; scores in [-1, 1]), ``ip`` (raw
            inner product) or ``l2`` (squared Euclidean distance).
        factory: a FAISS index-factory string: ``Flat`` (exact), ``HNSW32``, ``IVF1024,Flat``,
            ``IVF4096,PQ32``, ... Types that need training are trained on the first `add`.
        encoder: optional `Encoder` that turns images (and text, when it has ``encode_text``)
            into vectors for `add_images`, `search_text` and `search_images`.
        encoder_name: its registry name (e.g. ``"clip"``), saved so that `load` can rebuild it.
        device: ``auto`` (a FAISS GPU build and a GPU when present, else CPU), ``cpu`` or ``cuda``.
        batch_size: queries per FAISS call in `search` (bounds the memory of one call).

    Example:
        >>> index = EmbeddingIndex(4)
        >>> index.add(np.eye(4), ids=["a", "b", "c", "d"], metadata=[{"n": i} for i in range(4)])
        >>> index.search(np.eye(4)[:1], k=2)[0][0].id
        'a'
    """

    def __init__(
        self,
        dim: int,
        metric: str = "cosine",
        factory: str = "Flat",
        *,
        encoder: Encoder | None = None,
        encoder_name: str | None = None,
        device: str = "auto",
        batch_size: int = 65536,
    ) -> None:
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise EmbeddingIndexError(f"dim must be a positive integer; got {dim!r}")
        if metric not in METRICS:
            raise EmbeddingIndexError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
        if batch_size < 1:
            raise EmbeddingIndexError(f"batch_size must be >= 1; got {batch_size}")
        if device not in ("auto", "cpu", "cuda"):
            raise EmbeddingIndexError(f"unknown device {device!r}; use auto, cpu or cuda")
        if device == "cuda" and not gpu_available():
            raise EmbeddingIndexError(
                "device 'cuda' was asked for but FAISS has no GPU support or sees no GPU"
            )
        self.dim = int(dim)
        self.metric = metric
        self.factory = factory
        self.batch_size = batch_size
        self.device = "cuda" if device == "cuda" or (device == "auto" and gpu_available()) else "cpu"
        self.encoder = encoder
        self.encoder_name = encoder_name
        if encoder is not None and getattr(encoder, "embed_dim", dim) != dim:
            raise EmbeddingIndexError(f"the encoder makes {encoder.embed_dim}-d vectors but dim is {dim}")
        self._index = self._build(factory)
        self._keys: list[str | None] = []  # FAISS id -> string id (None once removed)
        self._meta: list[dict[str, Any] | None] = []  # FAISS id -> metadata
        # string id -> FAISS id; None until first needed, so a bulk add does not pay for it
        self._lookup: dict[str, int] | None = {}
        self._count = 0  # items in the index
        self._keys_array: np.ndarray | None = None  # cached object array of _keys for searches
        self._gpu_index = None

    # construction ---------------------------------------------------------------------------
    def _faiss_metric(self) -> int:
        faiss = _faiss()
        return faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def _build(self, factory: str):
        faiss = _faiss()
        if not isinstance(factory, str) or not factory.strip():
            raise EmbeddingIndexError(
                f"factory must be a FAISS index-factory string like 'Flat'; got {factory!r}"
            )
        try:
            index = faiss.index_factory(self.dim, factory, self._faiss_metric())
        except RuntimeError as err:
            raise EmbeddingIndexError(
                f"FAISS cannot build index {factory!r} for {self.dim}-d vectors: {_faiss_message(err)}"
            ) from err
        if faiss.try_extract_index_ivf(index) is None and not isinstance(index, faiss.IndexIDMap):
            index = faiss.index_factory(self.dim, f"IDMap,{factory}", self._faiss_metric())
        return index

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

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: size, dimension, metric, factory, FAISS type, encoder, device."""
        inner = self._index.index if isinstance(self._index, _faiss().IndexIDMap) else self._index
        return {
            "items": len(self),
            "dim": self.dim,
            "metric": self.metric,
            "factory": self.factory,
            "faiss_type": type(_faiss().downcast_index(inner)).__name__,
            "trained": self.is_trained,
            "encoder": self.encoder_name,
            "encoder_config": _encoder_config(self.encoder),
            "device": self.device,
        }

    def __repr__(self) -> str:
        return (
            f"EmbeddingIndex(dim={self.dim}, metric={self.metric!r}, factory={self.factory!r}, "
            f"items={len(self)})"
        )

    # training and adding ----------------------------------------------------------------------
    def _prepare(self, vectors: Any, what: str) -> np.ndarray:
        array = _as_matrix(vectors, self.dim, what)
        if self.metric == "cosine":
            array = _normalised(array, vectors)  # a NaN or inf anywhere leaves its row NaN
        _check_finite(array, what, unit_rows=self.metric == "cosine")
        return array

    def min_training_vectors(self) -> int:
        """How many vectors training needs (0 when the index type needs no training)."""
        if self.is_trained:
            return 0
        faiss = _faiss()
        needed = 1
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            needed = max(needed, int(ivf.nlist))
            pq = getattr(faiss.downcast_index(ivf), "pq", None)
            if pq is not None:
                needed = max(needed, int(pq.ksub))
        return needed

    def train(self, vectors: Any) -> EmbeddingIndex:
        """Train the index on ``(n, dim)`` sample vectors (only needed before adding few vectors)."""
        array = self._prepare(vectors, "training vectors")
        needed = self.min_training_vectors()
        if array.shape[0] < needed:
            raise EmbeddingIndexError(
                f"index {self.factory!r} needs at least {needed} vectors to train; got {array.shape[0]}. "
                "Add more vectors at once, train on a larger sample, or use fewer lists (e.g. IVF64) or Flat"
            )
        try:
            self._index.train(array)
        except RuntimeError as err:
            raise EmbeddingIndexError(
                f"training index {self.factory!r} failed: {_faiss_message(err)}"
            ) from err
        return self

    def add(
        self,
        vectors: Any,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> EmbeddingIndex:
        """Add ``(n, dim)`` vectors under string `ids` with optional per-item `metadata`.

        Args:
            ids: one unique string per vector, not already in the index; default: the running
                number of the vector as a string (``"0"``, ``"1"``, ...).
            metadata: one JSON-able dict (or None) per vector: path, label, any fields.

        The first add trains an index type that needs training on the vectors given.
        """
        array = self._prepare(vectors, "vectors")
        n = array.shape[0]
        start = len(self._keys)
        if ids is None:  # running numbers: strings, and unique among themselves by construction
            ids = list(map(str, range(start, start + n)))
        else:
            ids = list(ids)
            if len(ids) != n:
                raise EmbeddingIndexError(f"got {n} vectors but {len(ids)} ids")
            if not set(map(type, ids)) <= {str}:  # C-speed checks: these run once per item
                bad = next(i for i in ids if not isinstance(i, str))
                raise EmbeddingIndexError(f"ids must be strings; got {type(bad).__name__} {bad!r}")
            if len(set(ids)) != n:
                dup = next(i for i in ids if ids.count(i) > 1)
                raise EmbeddingIndexError(f"duplicate id {dup!r} among the ids given")
        if self._count and not self._id_map.keys().isdisjoint(ids):  # an empty index cannot clash
            clash = [i for i in ids if i in self._id_map]
            raise EmbeddingIndexError(
                f"{len(clash)} id(s) already in the index (e.g. {clash[0]!r}); remove them first"
            )
        if metadata is None:
            metas: list[dict[str, Any] | None] = [None] * n
        else:
            metas = [None if m is None else dict(m) for m in metadata]
            if len(metas) != n:
                raise EmbeddingIndexError(f"got {n} vectors but {len(metas)} metadata entries")
            try:
                json.dumps(metas, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise EmbeddingIndexError(f"metadata must be JSON-able dicts: {err}") from err
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
        missing = [i for i in ids if i not in self._id_map]
        if missing:
            raise EmbeddingIndexError(f"{len(missing)} id(s) not in the index (e.g. {missing[0]!r})")
        labels = np.array(sorted({self._id_map[i] for i in ids}), dtype=np.int64)
        if labels.size == 0:
            return 0
        try:
            removed = self._index.remove_ids(labels)
        except RuntimeError as err:
            raise EmbeddingIndexError(
                f"index type {self.factory!r} does not support removal ({_faiss_message(err)}); "
                "rebuild the index without those items, or use Flat or IVF"
            ) from err
        if removed != labels.size:  # pragma: no cover - would mean our id map is out of sync
            raise RuntimeError(f"FAISS removed {removed} of {labels.size} vectors")
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
        faiss = _faiss()
        for name, value in (("nprobe", nprobe), ("efSearch", efSearch)):
            if value is None:
                continue
            if int(value) < 1:
                raise EmbeddingIndexError(f"{name} must be >= 1; got {value}")
            try:
                faiss.ParameterSpace().set_index_parameter(self._index, name, int(value))
            except RuntimeError as err:
                raise EmbeddingIndexError(f"{name} does not apply to index {self.factory!r}") from err
        self._gpu_index = None

    def _search_index(self):
        if self.device != "cuda":
            return self._index
        if self._gpu_index is None:
            faiss = _faiss()
            try:
                self._gpu_resources = getattr(self, "_gpu_resources", None) or faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            except RuntimeError:  # this index type has no GPU version (e.g. HNSW): search on CPU
                self._gpu_index = self._index
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
        array = self._prepare(queries, "queries")
        if nprobe is not None or efSearch is not None:
            self.set_search_params(nprobe=nprobe, efSearch=efSearch)
        nq = array.shape[0]
        index = self._search_index()
        if not self.is_trained:  # nothing added yet to an index that needs training: no hits
            scores = np.full((nq, int(k)), np.nan, dtype=np.float32)
            labels = np.full((nq, int(k)), -1, dtype=np.int64)
        elif nq <= self.batch_size:
            scores, labels = index.search(array, int(k))
        else:
            scores = np.empty((nq, int(k)), dtype=np.float32)
            labels = np.empty((nq, int(k)), dtype=np.int64)
            for lo in range(0, nq, self.batch_size):
                hi = min(nq, lo + self.batch_size)
                scores[lo:hi], labels[lo:hi] = index.search(array[lo:hi], int(k))
        if self._keys_array is None:
            self._keys_array = np.array([*self._keys, None], dtype=object)  # index -1 -> None
        empty = labels < 0
        ids = self._keys_array[labels]  # -1 picks the trailing None
        if empty.any():
            scores[empty] = np.nan
        return SearchResults(ids, scores, labels, self._meta)

    # encoder-attached use ------------------------------------------------------------------
    def _require_encoder(self) -> Encoder:
        if self.encoder is None and self._encoder_record is not None:
            self.attach_encoder()  # a loaded index: rebuild its recorded encoder on first need
        if self.encoder is None:
            raise EmbeddingIndexError(
                "this index has no encoder attached (it records none); pass encoder=... to "
                "EmbeddingIndex() or EmbeddingIndex.load(), or call attach_encoder(encoder)"
            )
        return self.encoder

    def attach_encoder(self, encoder: Encoder | None = None, name: str | None = None, **kwargs: Any):
        """Attach `encoder`, or rebuild the one recorded when the index was saved.

        With no `encoder`, builds ``create_encoder(name or recorded name, **recorded config,
        **kwargs)``; `kwargs` (e.g. ``device``) override the recorded config. The record is
        checked first (`fewshot.index.recorded.verify_record`): registered encoder, known
        settings, and CLIP weights that are the very ``.safetensors`` file the index was built
        with; nothing is unpickled.

        Raises:
            CheckpointError: a record that cannot be trusted or does not match its weights.
        """
        if encoder is None:
            encoder, name = self._recorded_encoder(name, kwargs)
        if getattr(encoder, "embed_dim", self.dim) != self.dim:
            raise EmbeddingIndexError(
                f"the encoder makes {encoder.embed_dim}-d vectors but the index holds {self.dim}-d"
            )
        self.encoder = encoder
        if name is not None:
            self.encoder_name = name
        return self

    def _recorded_encoder(self, name: str | None, kwargs: dict[str, Any]) -> tuple[Encoder, str]:
        from fewshot.encoders import create_encoder
        from fewshot.index.recorded import check_rebuilt, verify_record

        name = name or self.encoder_name
        if name is None:
            raise EmbeddingIndexError("this index records no encoder; pass one to attach_encoder()")
        record = {"config": {}, **(self._encoder_record or {}), "name": name}
        verify_record(record, self._source or "the index")
        encoder = create_encoder(name, **{**record["config"], **kwargs})
        check_rebuilt(record, encoder, self._source or "the index")
        return encoder, name

    _encoder_record: dict[str, Any] | None = None  # the sidecar's record, on a loaded index
    _source: str | None = None  # the directory a loaded index came from (for messages)

    def add_images(self, paths: Sequence[str | os.PathLike[str]], **kwargs: Any):
        """Embed image files with the attached encoder and add them; see `fewshot.index.images`."""
        from fewshot.index.images import add_images

        return add_images(self, paths, **kwargs)

    def search_text(self, texts: str | Sequence[str], k: int = 10, **kwargs: Any) -> SearchResults:
        """Search by text: needs an encoder with ``encode_text`` (CLIP)."""
        from fewshot.index.images import embed_texts

        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.search(embed_texts(self._require_encoder(), texts), k, **kwargs)

    def search_images(self, images: Any, k: int = 10, **kwargs: Any) -> SearchResults:
        """Search by example images: file paths, PIL images or an already preprocessed batch."""
        from fewshot.index.images import embed_query_images

        return self.search(embed_query_images(self._require_encoder(), images), k, **kwargs)

    # persistence ---------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str], *, lock: bool = True):
        """Save to `directory` atomically (see `fewshot.index.storage`); returns its path.

        The save holds the directory's writer lock (a concurrent save is refused with
        `FewshotError`); pass ``lock=False`` when you hold ``exclusive_lock(directory)``
        yourself, e.g. across a load, add and save.
        """
        from fewshot.index.storage import save_index

        return save_index(self, directory, lock=lock)

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], encoder: Encoder | None = None, device: str = "auto"
    ) -> EmbeddingIndex:
        """Load an index saved with `save`, validating every part.

        The encoder comes back on demand: `encoder` attaches one now; without it, the first
        `search_text`, `search_images` or `add_images` rebuilds the encoder the index recorded
        (`attach_encoder`; call ``attach_encoder(device="cpu")`` first to choose its device).
        `search` with vectors never needs one.

        Raises:
            CheckpointError: missing, damaged, foreign or mismatched files.
        """
        from fewshot.index.storage import load_index

        return load_index(directory, encoder=encoder, device=device)

    def _items(self) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
        for label, key in enumerate(self._keys):
            if key is not None:
                yield label, key, self._meta[label]


def _encoder_config(encoder: Any) -> dict[str, Any] | None:
    if encoder is None:
        return None
    config = encoder.config() if hasattr(encoder, "config") else {}
    return config


def _faiss_message(err: BaseException) -> str:
    """The useful part of a FAISS C++ exception message."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    if "failed: " in text:
        text = text.split("failed: ", 1)[1]
    elif ": " in text and text.startswith("Error in"):
        text = text.rsplit(": ", 1)[1]
    return text


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true ``k`` neighbours found: both ``(nq, k)`` id arrays."""
    if found.shape != truth.shape:
        raise ValueError(f"shapes differ: {found.shape} vs {truth.shape}")
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size if truth.size else math.nan
