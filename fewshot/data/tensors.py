"""In-memory labelled data: the common shape every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LabeledTensors(torch.utils.data.Dataset):
    """Items and integer labels held in memory.

    Attributes:
        data: ``(n, ...)`` items: images ``(n, C, H, W)`` in ``[0, 1]`` or embeddings ``(n, d)``.
        labels: ``(n,)`` int64 class ids in ``0..len(class_names)-1``.
        class_names: name of every class id.
        info: free-form description (data set, split, subset, image size) kept in checkpoints.
        class_groups: optional group of every class id (Omniglot: its alphabet; an image
            folder: the parent folder of the class folder), for episodes drawn within one
            group (`fewshot.sampling.EpisodeSampler` ``class_groups``); None: no hierarchy.
    """

    data: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    info: dict = field(default_factory=dict)
    class_groups: list[str] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.data[index], int(self.labels[index])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)
