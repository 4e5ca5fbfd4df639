"""Shared fixtures: tiny synthetic data, and the shared Omniglot copy when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fewshot.data.tensors import LabeledTensors

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def omniglot_dir() -> Path:
    """The data directory holding omniglot/ (``$FEWSHOT_DATA_DIR`` or ``../shared/data``)."""
    candidates = [os.environ.get("FEWSHOT_DATA_DIR"), SHARED_DATA]
    for candidate in candidates:
        if candidate and (Path(candidate) / "omniglot" / "alphabets.tsv").exists():
            return Path(candidate)
    pytest.skip("Omniglot is not available (set FEWSHOT_DATA_DIR)")


def make_blobs(n_classes: int = 10, per_class: int = 20, dim: int = 16, spread: float = 0.1, seed: int = 0):
    """Well-separated Gaussian classes: ``LabeledTensors`` with data ``(n_classes*per_class, dim)``."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 3
    data = centres.repeat_interleave(per_class, 0) + spread * torch.randn(
        n_classes * per_class, dim, generator=g
    )
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return LabeledTensors(data, labels, [f"class{i}" for i in range(n_classes)], {"dataset": "blobs"})


@pytest.fixture
def blobs() -> LabeledTensors:
    return make_blobs()
