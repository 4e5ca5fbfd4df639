"""Embedding search: `EmbeddingIndex` over FAISS with string ids, metadata and atomic save/load.

FAISS is imported on first use, not when this package is imported.
"""

from __future__ import annotations

from fewshot.index.index import EmbeddingIndex, EmbeddingIndexError, Hit, SearchResults, recall_at_k

__all__ = ["EmbeddingIndex", "EmbeddingIndexError", "Hit", "SearchResults", "recall_at_k"]
