"""Weights drawn from a seed: the same command and ``--seed`` give the same untrained model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block (model construction) with torch's CPU generator seeded by ``seed``; the
    caller's global random state is restored afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


__all__ = ["seeded"]
