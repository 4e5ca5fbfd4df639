"""`adapt`: one adaptation run, from a source-labelled and an unlabelled target set to a model.

Runs the method's task (`trainer.NetworkAdaptation` or `feature_run.FeatureAdaptation`)
inside the run machinery (`fewshot.runs.open_run`: ``<out>.run.json``, ``<out>.state.pt``,
``<out>.log.csv``; resumable after kill -9), then evaluates the source-only and the adapted
model on the target (every validator; accuracy only when target labels are given), says
whether adaptation probably hurt (`judge`) and writes the model chosen by ``config.keep``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fewshot.adapt import ADAPTERS
from fewshot.adapt.base import has_batchnorm
from fewshot.adapt.config import AdaptConfig, AdaptResult, Evaluation
from fewshot.adapt.log import write_log
from fewshot.adapt.trainer import accuracy_of, target_probabilities
from fewshot.data.tensors import LabeledTensors
from fewshot.errors import FewshotError
from fewshot.learners.classifier import Classifier


def check_method(config: AdaptConfig, encoder: Any, encoder_name: str = "encoder"):
    """The method's class, after refusing unknown hyperparameters and a BatchNorm-less encoder."""
    if config.method not in ADAPTERS:
        raise FewshotError(f"unknown --method {config.method!r}: choose one of {', '.join(ADAPTERS.names())}")
    cls = ADAPTERS.get(config.method)
    unknown = sorted(set(config.params) - set(cls.param_names()))
    if unknown:
        allowed = ", ".join(cls.param_names()) or "none"
        raise FewshotError(
            f"--param {unknown[0]} is not a hyperparameter of {config.method} (it takes: {allowed})"
        )
    if cls.needs_batchnorm and not has_batchnorm(encoder):
        raise FewshotError(
            f"--method {config.method} re-estimates BatchNorm statistics and the {encoder_name} encoder "
            "has no BatchNorm layer: choose a method that does not need one"
        )
    return cls


def check_classes(source: LabeledTensors, target: LabeledTensors | None) -> None:
    if target is not None and list(target.class_names) != list(source.class_names):
        extra = ", ".join(sorted(set(target.class_names) ^ set(source.class_names))[:5]) or "their order"
        raise FewshotError(
            f"the source and target have different classes (differing: {extra}): "
            "adaptation needs the same classes on both sides"
        )


def judge(before: Evaluation, after: Evaluation, select: str) -> tuple[bool, str]:
    """Negative transfer: target accuracy fell (when labels are given), else the validator's score fell."""
    if before.accuracy is not None and after.accuracy is not None:
        if after.accuracy < before.accuracy:
            return (
                True,
                f"target accuracy fell from {before.accuracy:.4f} (source-only) to {after.accuracy:.4f}",
            )
        return False, f"target accuracy rose from {before.accuracy:.4f} (source-only) to {after.accuracy:.4f}"
    b, a = before.scores[select], after.scores[select]
    if a < b:
        return True, f"the {select} score fell from {b:.4f} (source-only) to {a:.4f} (no target labels)"
    return False, f"the {select} score rose from {b:.4f} (source-only) to {a:.4f} (no target labels)"


def evaluate(model: Classifier, items: torch.Tensor, labels: torch.Tensor | None, device) -> Evaluation:
    from fewshot.adapt.selection import scores

    p = target_probabilities(model, items, device)
    return Evaluation(accuracy_of(p, labels), {k: round(v, 6) for k, v in scores(p).items()})


def adapt(
    encoder: Any,
    source: LabeledTensors,
    target: LabeledTensors | torch.Tensor,
    config: AdaptConfig,
    out: str | Path | None = None,
    encoder_name: str = "encoder",
    metadata: dict[str, Any] | None = None,
    progress: bool | None = True,
    resume: bool = True,
    init: Classifier | None = None,
    use_target_labels: bool = True,
) -> tuple[Classifier, AdaptResult, dict[str, Classifier]]:
    """Adapt ``encoder`` from labelled ``source`` items ``(ns, ...)`` to ``target`` items ``(nt, ...)``.

    Args:
        target: unlabelled items, or `LabeledTensors` whose labels (when ``use_target_labels``)
            are used only to report accuracy; its classes must be the source's.
        init: a `Classifier` of the source classes to start from (its head is copied; set
            ``config.source_epochs = 0`` to skip source training).
        out: the model to write (``.safetensors``) with the run files beside it; None: in memory.

    Returns:
        ``(the kept model, the result, {"source-only": model, "adapted": model})``.
    """
    from fewshot.runs import check_output_file, finish_run, open_run

    config.check()
    cls = check_method(config, encoder, encoder_name)
    labelled = isinstance(target, LabeledTensors)
    check_classes(source, target if labelled else None)
    items = target.data if labelled else target
    if len(items) == 0:
        raise FewshotError("the target holds no item")
    labels = target.labels if labelled and use_target_labels else None
    if out is not None:
        out = check_output_file(out, "--out", suffix="")
    settings = run_settings(encoder, encoder_name, source, items, labels, config, init)
    job = _Job(cls, encoder, source, items, labels, config, init)
    if out is None:
        return job.run(None, progress, encoder_name, metadata)
    with open_run(out, settings, resume, "adapt", "this adaptation run") as files:
        kept, result, models = job.run(files, progress, encoder_name, metadata)
        finish_run(files, settings, "adapt", **{k: v for k, v in asdict(result).items() if k != "history"})
    return kept, result, models


def run_settings(encoder, encoder_name, source, items, labels, config: AdaptConfig, init) -> dict:
    from fewshot.checkpoints import weights_digest
    from fewshot.runs import data_description, json_safe

    target = LabeledTensors(
        items, labels if labels is not None else torch.zeros(len(items), dtype=torch.long), []
    )
    return json_safe(
        {
            "encoder": encoder_name,
            "encoder_config": encoder.config() if hasattr(encoder, "config") else {},
            "encoder_sha256": weights_digest(encoder.state_dict()),
            "init_sha256": None if init is None else weights_digest(init.state_dict()),
            "adapt": {k: v for k, v in asdict(config).items() if k != "device"},
            "source": data_description(source),
            "target": data_description(target),
            "target_labels": labels is not None,
        }
    )


class _Job:
    """One run's pieces, so that the in-memory and the on-disk runs share every step."""

    def __init__(self, cls, encoder, source, items, labels, config: AdaptConfig, init) -> None:
        self.cls, self.encoder, self.source, self.items, self.labels = cls, encoder, source, items, labels
        self.config, self.init = config, init
        self.device = torch.device(config.device)

    def run(self, files, progress, encoder_name, metadata):
        from fewshot.run_loop import run_units

        torch.manual_seed(self.config.seed)  # dropout and anything else drawing from the global stream
        task, models = self._task()
        if files is not None:
            task.after_state = lambda: write_log(files.log, task.history)
        run = run_units(task, files, progress)
        if files is not None:  # a run killed between its last state and log resumes with nothing to run
            write_log(files.log, task.history)
        source_model, adapted_model = models(task)
        before = evaluate(source_model, self.items, self.labels, self.device)
        after = evaluate(adapted_model, self.items, self.labels, self.device)
        negative, reason = judge(before, after, self.config.select)
        kept = self.config.keep if self.config.keep != "auto" else ("source-only" if negative else "adapted")
        params = getattr(task, "best_params", None) or dict(self.config.params)
        result = AdaptResult(
            self.config.method,
            params,
            self.config.select,
            before,
            after,
            negative,
            reason,
            kept,
            run.best,
            task.total,
            None if files is None else str(files.out),
            list(task.history),
        )
        model = source_model if kept == "source-only" else adapted_model
        if files is not None:
            self._write(files, model, result, encoder_name, metadata)
        return model, result, {"source-only": source_model, "adapted": adapted_model}

    def _classifier(self) -> Classifier:
        with torch.random.fork_rng():
            torch.manual_seed(self.config.seed)
            model = Classifier(self.encoder, self.source.class_names)
        if self.init is not None:
            model.head.load_state_dict(self.init.head.state_dict())
        return model.to(self.device)

    def _task(self):
        if self.cls.frozen_features:
            return self._feature_task()
        from fewshot.adapt.trainer import NetworkAdaptation

        model = self._classifier()
        task = NetworkAdaptation(
            model, self.cls(**self.config.params), self.source, self.items, self.config, self.labels
        )

        def models(task):
            source_model, adapted = copy.deepcopy(model), copy.deepcopy(model)
            source_model.load_state_dict(task.source_state)
            adapted.load_state_dict(task.best_state or task.model.state_dict())
            return source_model.eval(), adapted.eval()

        return task, models

    def _feature_task(self):
        from fewshot.adapt.feature_run import FeatureAdaptation

        self.encoder.to(self.device).eval()
        zs = self.encoder.encode_batched(self.source.data).float()
        zt = self.encoder.encode_batched(self.items).float()
        n = len(self.source.class_names)
        task = FeatureAdaptation(self.cls, zs, self.source.labels, zt, n, self.config, self.labels)

        def models(task):
            source_model, adapted = self._classifier(), self._classifier()
            _set_head(source_model, task.source_only_head())
            _set_head(adapted, task.best_head)
            return source_model.eval(), adapted.eval()

        return task, models

    def _write(self, files, model, result: AdaptResult, encoder_name, metadata) -> None:
        from fewshot.checkpoints import save_checkpoint
        from fewshot.faults import crash_point
        from fewshot.transfer.sources import classifier_metadata

        report = {k: v for k, v in asdict(result).items() if k not in ("history", "checkpoint")}
        meta = {**classifier_metadata(encoder_name, model), **(metadata or {}), "adapt": report}
        meta["dataset"] = self.source.info
        save_checkpoint(files.out, model, meta)
        crash_point("adapt.model")


@torch.no_grad()
def _set_head(model: Classifier, head: tuple[torch.Tensor, torch.Tensor]) -> None:
    model.head.weight.copy_(head[0])
    model.head.bias.copy_(head[1])


__all__ = ["adapt", "check_classes", "check_method", "evaluate", "judge"]
