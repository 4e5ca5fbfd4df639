"""Kept for callers of the old helpers: the checks now live in the library
(`fewshot.workflows.index`, `fewshot.index.recorded`)."""

from __future__ import annotations

from fewshot.index.recorded import check_local_weights as check_pretrained
from fewshot.index.recorded import check_rebuildable
from fewshot.workflows.index import check_trainable
from fewshot.workflows.index import check_writable_dir as check_writable

__all__ = ["check_pretrained", "check_rebuildable", "check_trainable", "check_writable"]
