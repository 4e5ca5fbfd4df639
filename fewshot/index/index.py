"""`EmbeddingIndex`: a `VectorIndex` with an encoder attached, saved and loaded atomically.

The layers, each importing only those below it:

- `fewshot.index.base`: the error, the metrics, FAISS, the checks inputs pass;
- `fewshot.index.core`: `VectorIndex`, vectors under string ids with metadata (add, search,
  remove), knowing nothing of images, encoders or files;
- `fewshot.index.recorded` (the encoder record of a sidecar), `fewshot.index.storage` (files)
  and `fewshot.index.images` (embedding image files and text queries);
- this module: `EmbeddingIndex`, which puts them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fewshot.errors import CheckpointError
from fewshot.index.base import METRICS, EmbeddingIndexError, check_settings, gpu_available
from fewshot.index.core import VectorIndex
from fewshot.index.recorded import check_rebuilt, encoder_record, verify_record
from fewshot.index.results import Hit, SearchResults, recall_at_k
from fewshot.index.storage import read_index, save_index

if TYPE_CHECKING:
    import os
    from pathlib import Path

    from fewshot.encoders.base import Encoder
    from fewshot.index.images import AddReport

__all__ = [
    "METRICS",
    "EmbeddingIndex",
    "EmbeddingIndexError",
    "Hit",
    "SearchResults",
    "VectorIndex",
    "gpu_available",
    "recall_at_k",
]


class EmbeddingIndex(VectorIndex):
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
        check_settings(dim, metric, batch_size, device)  # settings, then the encoder, then FAISS
        if encoder is not None and getattr(encoder, "embed_dim", dim) != dim:
            raise EmbeddingIndexError(f"the encoder makes {encoder.embed_dim}-d vectors but dim is {dim}")
        super().__init__(dim, metric, factory, device=device, batch_size=batch_size)
        self.encoder = encoder
        self.encoder_name = encoder_name
        self._encoder_record: dict[str, Any] | None = None  # the sidecar's record, on a loaded index
        self._source: str | None = None  # the directory a loaded index came from (for messages)

    @classmethod
    def from_parts(
        cls,
        faiss_index: Any,
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any] | None],
        *,
        encoder_record: dict[str, Any] | None = None,
        source: str | None = None,
        **kwargs: Any,
    ) -> EmbeddingIndex:
        """`VectorIndex.from_parts`, plus the record of the encoder that built the vectors.

        Args:
            encoder_record: the record `attach_encoder` rebuilds the encoder from (see
                `fewshot.index.recorded`); its name becomes `encoder_name`.
            source: where the parts came from, for messages (e.g. the index directory).
            kwargs: `VectorIndex.from_parts`'s arguments and this class's constructor's.
        """
        index = super().from_parts(faiss_index, ids, metadata, **kwargs)
        index._encoder_record = encoder_record
        index._source = source
        if encoder_record is not None:
            index.encoder_name = encoder_record["name"]
        return index

    @property
    def recorded_encoder(self) -> dict[str, Any] | None:
        """The encoder record a loaded index came with (its sidecar's ``encoder``), else None."""
        return self._encoder_record

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary: size, dimension, metric, factory, FAISS type, encoder, device."""
        info = super().describe()
        device = info.pop("device")
        return {
            **info,
            "encoder": self.encoder_name,
            "encoder_config": _encoder_config(self.encoder),
            "device": device,
        }

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
        from fewshot.encoders import create_encoder  # imports torch: only when an encoder is built

        name = name or self.encoder_name
        if name is None:
            raise EmbeddingIndexError("this index records no encoder; pass one to attach_encoder()")
        record = {"config": {}, **(self._encoder_record or {}), "name": name}
        verify_record(record, self._source or "the index")
        encoder = create_encoder(name, **{**record["config"], **kwargs})
        check_rebuilt(record, encoder, self._source or "the index")
        return encoder, name

    # fewshot.index.images imports torch, so these import it on first use
    def add_images(self, paths: Sequence[str | os.PathLike[str]], **kwargs: Any) -> AddReport:
        """Embed image files with the attached encoder and add them; see `fewshot.index.images`."""
        from fewshot.index.images import add_images

        return add_images(self, self._require_encoder(), paths, **kwargs)

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
    def save(self, directory: str | os.PathLike[str], *, lock: bool = True) -> Path:
        """Save to `directory` atomically (see `fewshot.index.storage`); returns its path.

        The save holds the directory's writer lock (a concurrent save is refused with
        `FewshotError`); pass ``lock=False`` when you hold ``exclusive_lock(directory)``
        yourself, e.g. across a load, add and save.
        """
        return save_index(self, directory, encoder=encoder_record(self), lock=lock)

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
        saved = read_index(directory)
        try:
            index = cls.from_parts(
                saved.faiss_index,
                saved.ids,
                saved.metadata,
                labels=saved.labels,
                next_label=saved.next_label,
                metric=saved.metric,
                factory=saved.factory,
                device=device,
                encoder_record=saved.encoder,
                source=str(saved.directory),
            )
        except EmbeddingIndexError as err:
            raise CheckpointError(f"{saved.sidecar_path}: {err}") from err
        if encoder is not None:
            index.attach_encoder(encoder, name=index.encoder_name)
        return index


def _encoder_config(encoder: Any) -> dict[str, Any] | None:
    if encoder is None:
        return None
    return encoder.config() if hasattr(encoder, "config") else {}
