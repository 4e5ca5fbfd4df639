"""A rehearsal memory of a fixed number of items, stored compactly.

Images in ``[0, 1]`` are kept as ``uint8`` (``round(255 x)``: exact for 8-bit sources such as
Fashion-MNIST and Omniglot, within 1/510 otherwise), a quarter of float32; other items
(embeddings) as float16. Two ways to choose what stays:

- ``reservoir`` (Vitter's algorithm R over the whole stream): the t-th item seen (1-based)
  enters a full memory with probability ``memory / t``, replacing a uniformly chosen slot, so
  the memory is a uniform sample of everything seen;
- ``class-balanced``: after each experience every class seen gets ``memory // classes`` slots
  (the first ``memory % classes`` classes one more); old classes drop their last items, new
  ones fill theirs with a random sample.

The memory never holds more than ``memory`` items.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError

POLICIES = ("reservoir", "class-balanced")


class ReplayBuffer:
    """Items ``(m, ...)`` and labels ``(m,)``, ``m <= memory``."""

    def __init__(self, memory: int, policy: Literal["reservoir", "class-balanced"] = "reservoir") -> None:
        if memory < 1:
            raise FewshotError(f"--memory must be at least 1 item, got {memory}")
        if policy not in POLICIES:
            raise FewshotError(f"--buffer must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.memory, self.policy = int(memory), policy
        self.items: torch.Tensor | None = None  # compact: uint8 images or float16 features
        self.labels = torch.zeros(0, dtype=torch.long)
        self.seen = 0  # items offered so far (reservoir)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @staticmethod
    def _pack(x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and x.dtype.is_floating_point and bool(((x >= 0) & (x <= 1)).all()):
            return x.mul(255).round_().to(torch.uint8)
        return x.to(torch.float16)

    def data(self) -> LabeledTensors:
        """The memory as float32 items (what training sees)."""
        x = self.items
        if x is None:
            raise FewshotError("the replay memory is empty")
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return LabeledTensors(x, self.labels, [])

    def nbytes(self) -> int:
        return 0 if self.items is None else self.items.numel() * self.items.element_size()

    def update(self, data: LabeledTensors, generator: torch.Generator) -> None:
        """Offer every item of `data` (one experience) to the memory."""
        packed = self._pack(data.data)
        if self.items is None:
            self.items = packed[:0].clone()
        if self.policy == "reservoir":
            self._reservoir(packed, data.labels, generator)
        else:
            self._balanced(packed, data.labels, generator)

    def _reservoir(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        order = torch.randperm(len(y), generator=generator)
        draws = torch.rand(len(y), generator=generator).tolist()
        items, labels = list(self.items.unbind(0)), self.labels.tolist()
        for i, u in zip(order.tolist(), draws, strict=True):
            self.seen += 1
            if len(labels) < self.memory:
                items.append(x[i])
                labels.append(int(y[i]))
                continue
            slot = int(u * self.seen)
            if slot < self.memory:
                items[slot], labels[slot] = x[i], int(y[i])
        self.items = torch.stack(items) if items else self.items
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def _balanced(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        classes = sorted(set(self.labels.tolist()) | set(y.tolist()))
        quota = {
            c: self.memory // len(classes) + (k < self.memory % len(classes)) for k, c in enumerate(classes)
        }
        keep_x, keep_y = [], []
        for c in classes:
            old = torch.nonzero(self.labels == c).flatten()
            if len(old):
                chosen_x, n = self.items[old[: quota[c]]], min(len(old), quota[c])
            else:
                rows = torch.nonzero(y == c).flatten()
                rows = rows[torch.randperm(len(rows), generator=generator)[: quota[c]]]
                chosen_x, n = x[rows.sort().values], min(len(rows), quota[c])
            keep_x.append(chosen_x)
            keep_y.append(torch.full((n,), c, dtype=torch.long))
        self.items, self.labels = torch.cat(keep_x), torch.cat(keep_y)
        self.seen += len(y)

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The items at slots `idx` as float32 ``(len(idx), ...)``, and their labels."""
        x = self.items[idx]
        return (x.float().div_(255) if x.dtype == torch.uint8 else x.float()), self.labels[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"items": self.items, "labels": self.labels, "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.items, self.labels, self.seen = state["items"], state["labels"], int(state["seen"])


__all__ = ["POLICIES", "ReplayBuffer"]
