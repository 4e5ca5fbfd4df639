"""A continual run on the run machinery: one unit of `fewshot.run_loop` is one experience.

After each experience the model is tested on every experience of the stream (one row of the
accuracy matrix R), then the run writes, each atomically and in this order: the model so far
as a fixed-class `Classifier` checkpoint at ``out`` (crash point ``continual.checkpoint``;
"best" in the run loop's terms is simply the latest, since each experience's score is its
index), the state (weights, head layout, the strategy's memory or penalties, the data-order
generator, R; ``continual.state``) and the report beside the model
(``<out>.accuracy.json``: R so far and its metrics; ``continual.report``). A run killed
between (or during) experiences resumes after the last finished one and ends with the files
of an uninterrupted run.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fewshot.continual import metrics
from fewshot.continual.base import Strategy, TrainSettings, evaluate
from fewshot.continual.model import ContinualModel
from fewshot.continual.scenarios import Experience, Stream
from fewshot.data.tensors import LabeledTensors
from fewshot.run_loop import RunProgress, RunTask


def report_path(out: Path) -> Path:
    return out.with_name(out.name + ".accuracy.json")


def embed_stream(stream: Stream, encoder: torch.nn.Module, device: Any) -> Stream:
    """The stream with every item replaced by its embedding ``(n, d)`` (frozen encoders)."""

    def embed(data: LabeledTensors) -> LabeledTensors:
        z = encoder.encode_batched(data.data.to(device)) if len(data) else data.data.new_zeros(0, 1)
        return LabeledTensors(z.float().cpu(), data.labels, data.class_names, dict(data.info))

    experiences = [
        Experience(e.index, embed(e.train), embed(e.test), e.classes, e.name) for e in stream.experiences
    ]
    return Stream(stream.scenario, experiences, stream.class_names, dict(stream.info))


class ContinualRun(RunTask):
    """Trains `strategy` on `stream` experience by experience (see the module docstring).

    Args:
        stream: the experiences (items as the encoder expects them).
        strategy: a `Strategy` instance.
        encoder: the `Encoder` to train (or, for a ``frozen_encoder`` strategy, to embed with).
        settings: epochs, learning rate, batch size, optimiser, device.
        seed: new heads, data order, replay draws.
        metadata: extra entries for the checkpoint (encoder name, preprocessing, ...).
    """

    command, unit = "continual", "task"

    def __init__(
        self,
        stream: Stream,
        strategy: Strategy,
        encoder: torch.nn.Module,
        settings: TrainSettings,
        seed: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        from fewshot.encoders.base import IdentityEncoder

        self.device = torch.device(settings.device)
        self.source_stream, self.strategy, self.settings, self.seed = stream, strategy, settings, seed
        self.encoder, self.metadata = encoder.to(self.device), metadata or {}
        self.total = len(stream)
        if strategy.frozen_encoder:
            stream = embed_stream(stream, self.encoder.eval(), self.device)
            trained = IdentityEncoder(int(stream.experiences[0].train.data.shape[-1]))
        else:
            trained = self.encoder
        self.stream = stream
        torch.manual_seed(seed)
        self.model = ContinualModel(trained, len(stream.class_names), strategy.normalize).to(self.device)
        self.channels_last = self._layout(stream, settings)
        self.settings = replace(settings, precision=self._precision(stream, settings))
        self.generator = torch.Generator().manual_seed(seed)
        self.R: list[list[float]] = []
        self.b: list[float] = []
        self.seconds: list[float] = []
        self.files_out: Path | None = None  # where `after_state` writes the report
        self.eval_batch: int | None = None  # `_evaluator`'s batch size, once probed
        strategy.setup(stream)

    def _layout(self, stream: Stream, settings: TrainSettings) -> bool:
        """Channels-last for a trained convolutional encoder on CPU when a timing check says it
        is faster on this machine (`fewshot.cpu_layout`); the same machine always agrees."""
        from fewshot.cpu_layout import prefer_channels_last

        if self.strategy.frozen_encoder:
            return False
        sample = stream.experiences[0].train.data[: settings.batch_size]
        chosen = prefer_channels_last(self.model.encoder, sample, self.device)  # timed: heads are linear
        if chosen:
            self.model.to(memory_format=torch.channels_last)
        return chosen

    def _precision(self, stream: Stream, settings: TrainSettings) -> str:
        """``auto``: bf16 for a trained encoder on CPU when `fewshot.cpu_bf16`'s timing check
        (in the layout chosen above) says it is faster here; fp32 otherwise."""
        from fewshot.cpu_bf16 import prefer_bf16

        if settings.precision != "auto":
            return settings.precision
        if self.strategy.frozen_encoder:
            return "fp32"
        sample = stream.experiences[0].train.data[: settings.batch_size]
        return "bf16" if prefer_bf16(self.model.encoder, sample, self.device) else "fp32"

    # -- the run loop's hooks ----------------------------------------------------------------

    def start(self, progress: RunProgress, resumed: bool) -> None:
        if not resumed:
            self.b = self._untrained_accuracy()

    def run_unit(self, index: int) -> None:
        started = time.perf_counter()
        exp = self.stream.experiences[index]
        self.strategy.train_experience(self.model, exp, self.settings, self.generator)
        fast, batch = self._evaluator(self.model)
        exps = self.stream.experiences
        self.R.append([evaluate(fast, e.test, self._mask(e), self.device, batch) for e in exps])
        self.seconds.append(round(time.perf_counter() - started, 3))

    def postfix(self, done: int) -> dict[str, str]:
        return {"avg acc": f"{metrics.average_accuracy(self.matrix()):.3f}"}

    def validate(self, done: int) -> float:
        return float(done)  # the latest model is the one kept

    def keep_best(self, out: Path | None, done: int, score: float) -> None:
        if out is None or len(self.model.seen) < 2:
            return
        from fewshot.checkpoints import save_checkpoint

        classifier, meta = self.classifier()
        save_checkpoint(out, classifier, meta)

    def training_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "structure": self.model.structure(),
            "strategy": self.strategy.state_dict(),
            "generator": self.generator.get_state(),
            "R": self.R,
            "b": self.b,
            "seconds": self.seconds,
            "channels_last": self.channels_last,
            "precision": self.settings.precision,
        }

    def restore(self, state: dict[str, Any]) -> None:
        if bool(state.get("channels_last", False)) != self.channels_last:  # the run keeps its layout
            self.channels_last = not self.channels_last
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            self.model.to(memory_format=layout)
        self.settings = replace(self.settings, precision=str(state.get("precision", "fp32")))
        self.model.rebuild(state["structure"])
        self.model.load_state_dict(state["model"])
        self.strategy.load_state_dict(state["strategy"], self.model)
        self.generator.set_state(state["generator"].cpu())
        self.R, self.b, self.seconds = state["R"], state["b"], state["seconds"]

    def after_state(self) -> None:
        from fewshot.faults import crash_point
        from fewshot.fileio import atomic_write_bytes

        if self.files_out is None:
            return
        text = json.dumps(self.report(), indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(report_path(self.files_out), text.encode())
        crash_point("continual.report")

    # -- results -----------------------------------------------------------------------------

    def matrix(self) -> list[list[float]]:
        """R as a square matrix of the experiences done so far (rows: after training; columns: tested)."""
        return [row[: len(self.R)] for row in self.R]

    def report(self) -> dict[str, Any]:
        """R (the full rows: every experience tested after each), b and the metrics so far."""
        done, domains = len(self.R), self.stream.scenario == "domain-il"
        return {
            "scenario": self.stream.scenario,
            "strategy": type(self.strategy).__name__,
            "experiences": [{"name": e.name, "classes": e.classes} for e in self.stream.experiences],
            "accuracy_matrix": self.R,
            "untrained_accuracy": self.b,
            "metrics": metrics.summary(self.matrix(), self.b[:done] if domains else None) if done else {},
            "seconds": self.seconds,
            "channels_last": self.channels_last,
            "precision": self.settings.precision,
        }

    def classifier(self):
        """The model so far as a `Classifier` over the seen classes, with its checkpoint metadata."""
        from fewshot.learners.classifier import Classifier
        from fewshot.transfer.sources import classifier_metadata

        weight, bias, ids = self.model.merged_head()
        names = [self.stream.class_names[c] for c in ids]
        encoder = copy.deepcopy(self.encoder).cpu()
        model = Classifier(encoder, names, normalize=self.model.normalize)
        with torch.no_grad():
            if not self.strategy.frozen_encoder:
                model.encoder.load_state_dict(self.model.encoder.state_dict())
            model.head.weight.copy_(weight)
            model.head.bias.copy_(bias)
        meta = {**classifier_metadata(self.metadata.get("encoder_name", "conv4"), model), **self.metadata}
        meta.pop("encoder_name", None)
        meta["continual"] = {"experiences_done": len(self.R), "scenario": self.stream.scenario}
        return model.eval(), meta

    # -- helpers -----------------------------------------------------------------------------

    def _mask(self, exp: Experience) -> torch.Tensor:
        if self.stream.task_aware:
            return self.model.class_mask(exp.classes)
        return self.model.class_mask()

    def _untrained_accuracy(self) -> list[float]:
        """b: each experience's accuracy with fresh heads for its classes (forward transfer's base)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1)
            model = copy.deepcopy(self.model)
            model.add_classes(range(model.n_classes))
            fast, batch = self._evaluator(model)
            return [
                evaluate(fast, e.test, model.class_mask(e.classes), self.device, batch)
                for e in self.stream.experiences
            ]

    def _evaluator(self, model: ContinualModel) -> tuple[ContinualModel, int]:
        """`model`'s inference form and the batch size to evaluate it with: sized to the CPU's
        cache on CPU (`fewshot.encoders.inference`, probed on the first call), 512 elsewhere."""
        from fewshot.encoders.inference import cpu_batch_size

        fast = model.inference_copy()
        if self.eval_batch is None:
            sample = self.stream.experiences[0].test.data[:1].to(self.device)
            cpu = self.device.type == "cpu" and len(sample)
            self.eval_batch = cpu_batch_size(fast.encoder, sample) if cpu else 512
        return fast, self.eval_batch


def train_continual(
    task: ContinualRun,
    out: Path | None,
    settings: dict[str, Any],
    resume: bool = True,
    progress: bool | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Run `task` to the end; with `out`, inside `fewshot.runs.open_run` (resumable, locked),
    writing the model, the report and (``plot``) the plot ``<out>.png`` (crash point
    ``continual.plot``) before marking the run done. Returns the report."""
    from fewshot.run_loop import run_units

    if out is None:
        run_units(task, None, progress)
        return task.report()
    from fewshot.faults import crash_point
    from fewshot.fileio import atomic_write_bytes
    from fewshot.runs import finish_run, open_run

    with open_run(out, settings, resume, "continual", "this continual run") as files:
        task.files_out = out
        run_units(task, files, progress)
        task.after_state()  # again: a run killed before its last report resumes with nothing to do
        report = task.report()
        if plot:
            from fewshot.continual.plot import accuracy_plot

            atomic_write_bytes(plot_path(out), accuracy_plot(report))
            crash_point("continual.plot")
        finish_run(files, settings, "continual", **report["metrics"])
    return report


def plot_path(out: Path) -> Path:
    return out.with_name(out.name + ".png")


__all__ = ["ContinualRun", "embed_stream", "plot_path", "report_path", "train_continual"]
