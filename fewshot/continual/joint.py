"""Joint (cumulative) training: each experience is trained on the items of every experience
so far, the upper bound of a stream (Avalanche's ``Cumulative``; after the last experience it
has trained on the whole data set, as joint training does)."""

from __future__ import annotations

import torch

from fewshot.continual import STRATEGIES
from fewshot.continual.base import Strategy
from fewshot.continual.scenarios import Experience, Stream
from fewshot.data.tensors import LabeledTensors


@STRATEGIES.register("joint")
class Joint(Strategy):
    """Experience k is trained on the training items of experiences 0..k."""

    def setup(self, stream: Stream) -> None:
        self.stream = stream

    def training_data(self, exp: Experience) -> LabeledTensors:
        parts = [e.train for e in self.stream.experiences[: exp.index + 1]]
        return LabeledTensors(
            torch.cat([p.data for p in parts]), torch.cat([p.labels for p in parts]), parts[0].class_names
        )
