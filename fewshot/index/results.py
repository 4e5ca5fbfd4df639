"""What a search returns: `Hit` and `SearchResults`; and `recall_at_k` to score them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


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


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true ``k`` neighbours found: both ``(nq, k)`` id arrays."""
    if found.shape != truth.shape:
        raise ValueError(f"shapes differ: {found.shape} vs {truth.shape}")
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size if truth.size else math.nan
