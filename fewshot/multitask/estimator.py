"""`MultiTaskLearner`: multi-task learning in the shape of the learners (scikit-learn style).

``MultiTaskLearner(encoder, steps=300, sampling="uniform").fit([x_a, x_b], [y_a, y_b])``
trains one shared encoder with a head per task in memory (`fewshot.multitask.run`) and
returns itself; learned state ends in ``_``: ``classes_`` (per task, the sorted distinct
labels), ``model_`` (the `MultiTaskModel`), ``batches_`` (batches drawn per task),
``task_weights_`` (their final loss weights), ``seconds_``. ``predict(x, task)`` gives labels
of ``classes_[task]``; ``classifier(task)`` a fixed-class `Classifier` to save.
`compare_with_single_task` also trains one model per task and reports both.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from fewshot.errors import FewshotError, NotFittedError


def _tasks(xs, ys, names=None, prefix="task"):
    """`Task`s from items and labels; labels mapped to ``0..C-1`` (returns the classes too)."""
    from fewshot.data.tensors import LabeledTensors
    from fewshot.multitask.run import Task

    if len(xs) != len(ys):
        raise FewshotError(f"give labels for every task: {len(xs)} item sets, {len(ys)} label sets")
    tasks, classes = [], []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        values, labels = torch.unique(torch.as_tensor(y), return_inverse=True)
        data = LabeledTensors(torch.as_tensor(x), labels, [str(int(c)) for c in values])
        name = names[i] if names else f"{prefix}{i}"
        tasks.append(Task(name, data, data))
        classes.append(values)
    return tasks, classes


class MultiTaskLearner:
    """Args: encoder: any `Encoder` (left as it is: the model trains a copy); steps,
    batch_size, lr, optimizer, sampling (``proportional`` | ``uniform``), weighting
    (``fixed`` | ``uncertainty``), weights (fixed: one per task), tasks_per_step: see
    `MultiTaskSettings`; seed; device."""

    def __init__(
        self,
        encoder: torch.nn.Module,
        steps: int = 300,
        batch_size: int = 32,
        lr: float = 0.01,
        optimizer: str = "sgd",
        sampling: str = "proportional",
        weighting: str = "fixed",
        weights: Sequence[float] | None = None,
        tasks_per_step: int | None = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.encoder, self.steps, self.batch_size, self.lr = encoder, steps, batch_size, lr
        self.optimizer, self.sampling, self.weighting = optimizer, sampling, weighting
        self.weights, self.tasks_per_step, self.seed, self.device = weights, tasks_per_step, seed, device

    def get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "encoder")]
        return {name: getattr(self, name) for name in names}

    def settings(self, eval_every: int | None = None):
        from fewshot.multitask.training import MultiTaskSettings

        weights = None if self.weights is None else [float(w) for w in self.weights]
        return MultiTaskSettings(
            self.steps, self.batch_size, self.lr, self.optimizer, self.sampling, self.weighting,
            weights, self.tasks_per_step, eval_every or self.steps, self.device,
        )  # fmt: skip

    def fit(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> MultiTaskLearner:
        """Items ``(n_t, ...)`` and labels ``(n_t,)`` of each task t."""
        from fewshot.multitask.run import MultiTaskRun
        from fewshot.multitask.saving import train_multitask

        tasks, self.classes_ = _tasks(xs, ys)
        settings = self.settings()
        settings.check(len(tasks))
        run = MultiTaskRun(self.encoder, tasks, settings, self.seed, baseline_steps=0)
        train_multitask(run, None, {}, progress=False)
        training = run.jobs[0]
        self.model_ = training.model.eval()
        self.batches_ = list(training.batches.draws)
        self.task_weights_ = training.model.weighting.task_weights()
        self.seconds_ = run.seconds[0]
        return self

    def _model(self):
        if not hasattr(self, "model_"):
            raise NotFittedError("this MultiTaskLearner is not fitted yet: call fit(xs, ys)")
        return self.model_

    @torch.no_grad()
    def logits(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """``(n, ...)`` -> ``(n, C_task)``."""
        model = self._model().eval()
        return model(torch.as_tensor(x).to(next(model.parameters()).device), task).cpu()

    def predict_proba(self, x: torch.Tensor, task: int) -> torch.Tensor:
        return self.logits(x, task).softmax(-1)

    def predict(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Labels of task `task` (values of ``classes_[task]``)."""
        best = self.logits(x, task).argmax(-1)  # first: refuses an unfitted learner
        return self.classes_[task][best]

    def score(self, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> list[float]:
        """Each task's accuracy on its items ``xs[t]`` with labels ``ys[t]``."""
        return [
            float((self.predict(x, t) == torch.as_tensor(y)).float().mean())
            for t, (x, y) in enumerate(zip(xs, ys, strict=True))
        ]

    def classifier(self, task: int):
        """Task `task`'s head on the shared encoder as a `Classifier` (class names: the labels)."""
        return self._model().classifier(task, [str(int(c)) for c in self.classes_[task]])


def compare_with_single_task(
    encoder: torch.nn.Module,
    train: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
    test: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]],
    baseline_steps: int | None = None,
    **params: Any,
) -> dict[str, Any]:
    """The shared model (`MultiTaskLearner` `params`) and one model per task, each from a copy
    of `encoder`, on ``train = (xs, ys)``; test accuracies on ``test = (xs, ys)`` and times:
    the report of `MultiTaskRun`."""
    from fewshot.data.tensors import LabeledTensors
    from fewshot.multitask.run import MultiTaskRun
    from fewshot.multitask.saving import train_multitask

    tasks, classes = _tasks(*train)
    for task, values, x, y in zip(tasks, classes, *test, strict=True):
        labels = torch.searchsorted(values, torch.as_tensor(y))
        task.test = LabeledTensors(torch.as_tensor(x), labels, task.train.class_names)
    learner = MultiTaskLearner(encoder, **params)
    settings = learner.settings()
    settings.check(len(tasks))
    run = MultiTaskRun(encoder, tasks, settings, learner.seed, baseline_steps)
    return train_multitask(run, None, {}, progress=False)


__all__ = ["MultiTaskLearner", "compare_with_single_task"]
