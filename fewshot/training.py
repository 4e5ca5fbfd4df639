"""One training loop for every meta-trainable learner (``meta_trainable``: it defines ``episode_loss``).

Episodes come from an `EpisodeSampler` over the training data; Adam with a step schedule;
validation episodes on held-out classes every ``val_every`` steps; the best checkpoint is
kept; early stopping after ``patience`` validations without improvement; a progress bar
shows loss and accuracy; every validation is logged to ``log.csv`` and the run's settings
and summary to ``run.json``.

A unit of `fewshot.run_loop` is one meta-step. Resuming: at every validation the run writes,
each atomically and in this order, the best checkpoint (when it improved), the state
(weights, optimiser, schedule, RNG, counters and the log rows) and the log. The state is the
commit point: a run killed anywhere and run again with the same settings resumes from its last
state and ends with exactly the files of an uninterrupted run (timing fields aside). Other
settings are refused (`fewshot.runs`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fewshot.checkpoints import save_checkpoint
from fewshot.data.tensors import LabeledTensors
from fewshot.device import resolve_device
from fewshot.episode_draws import episode_options
from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.learners.base import FewShotLearner
from fewshot.preprocessing import preprocessing_from_data
from fewshot.run_loop import MixedPrecision, RunProgress, RunTask, run_units
from fewshot.runs import RunFiles, check_output_file, finish_run, open_run
from fewshot.sampling import EpisodeSampler
from fewshot.training_config import CLI_OPTIONS, TrainConfig, TrainResult
from fewshot.training_state import restore_train_state, run_settings, train_counters, train_state, write_log


def _episode_accuracy(
    learner: FewShotLearner, data: LabeledTensors, cfg: TrainConfig, device: torch.device
) -> float:
    """Mean validation accuracy over a fixed set of episodes (same episodes every time)."""
    from fewshot.evaluation import evaluate

    result = evaluate(
        learner,
        data,
        ways=cfg.val_ways,
        shots=cfg.val_shots,
        queries=cfg.val_queries,
        episodes=cfg.val_episodes,
        seed=cfg.seed + 1,
        device=device,
        progress=False,
    )
    return result.mean


def train(
    learner: FewShotLearner,
    train_data: LabeledTensors,
    out: str | Path,
    config: TrainConfig,
    val_data: LabeledTensors | None = None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Meta-train `learner` on episodes of `train_data`; write the best checkpoint to `out`
    (best by validation accuracy; without `val_data`, the last step).

    Beside ``out`` (a ``.safetensors`` path) the run keeps ``<out>.state.pt`` (the last
    state, for resuming), ``<out>.log.csv`` and ``<out>.run.json``. With `resume`, a run
    found there resumes if its settings are these (else `FewshotError`); without, it is
    deleted first. The caller seeds the learner's construction (``torch.manual_seed``).
    """
    config.check()
    if not learner.meta_trainable:
        raise FewshotError(f"{type(learner).__name__} cannot be meta-trained (it has no episode_loss)")
    out = check_output_file(out, "--out", suffix="")
    settings = run_settings(learner, train_data, val_data, config, metadata)
    with open_run(out, settings, resume, "train", "this training run") as files:
        result = _train_locked(learner, train_data, files, config, val_data, metadata, progress)
        finish_run(files, settings, "train", **asdict(result), config=asdict(config))
    return result


def _train_locked(
    learner: FewShotLearner,
    train_data: LabeledTensors,
    files: RunFiles,
    config: TrainConfig,
    val_data: LabeledTensors | None,
    metadata: dict[str, Any] | None,
    progress: bool,
) -> TrainResult:
    task = MetaTraining(learner, train_data, files, config, val_data, metadata)
    run = run_units(task, files, progress)
    return TrainResult(
        best_val_accuracy=run.best_score if val_data is not None else None,
        best_step=run.best,
        steps_done=run.done,
        seconds=round(time.perf_counter() - task.started, 1),
        stopped_early=run.stopped_early,
        checkpoint=str(files.out),
        resumed_from=task.resumed_from,
    )


class MetaTraining(RunTask):
    """Meta-training as a `fewshot.run_loop` task: a unit is one meta-step of episodes."""

    command, unit = "train", "ep"

    def __init__(self, learner, train_data, files: RunFiles, config: TrainConfig, val_data, metadata) -> None:
        self.learner, self.train_data, self.files, self.config = learner, train_data, files, config
        self.val_data, self.metadata = val_data, metadata
        self.total, self.patience = config.steps, config.patience
        self.device = resolve_device(config.device)
        learner.to(self.device)
        torch.manual_seed(config.seed)
        # config.extra["episodes"]: within_group, skip_small_groups, variable (`episode_options`)
        self.sampler = EpisodeSampler(
            train_data.labels,
            config.ways,
            config.shots,
            config.queries,
            episodes=config.steps * config.meta_batch,
            seed=config.seed,
            **episode_options(train_data, **config.extra.get("episodes", {})),
        )
        self.optimizer, self.schedule = _optimiser(learner, config)
        self.amp = MixedPrecision(self.device, config.mixed_precision)
        self.scaler = self.amp.scaler()
        self.rows: list[list[str]] = []
        self.elapsed = 0.0
        self.window = [0.0, 0.0, 0]  # loss sum, accuracy sum, episodes since the last validation

    def restore(self, state: dict) -> None:
        restore_train_state(state, self.learner, self.optimizer, self.schedule, self.scaler)

    def progress_from(self, state: dict) -> RunProgress:
        run = train_counters(self.files.state, state)
        self.rows, self.elapsed = run["rows"], run["elapsed"]
        counters = (run["step"], run["best_acc"], run["best_step"], run["bad_rounds"], run["stopped_early"])
        return RunProgress(*counters)

    def start(self, progress: RunProgress, resumed: bool) -> None:
        write_log(self.files.log, self.rows)  # drops rows a killed run wrote after its last state
        self.meta = _checkpoint_metadata(self.metadata, self.config, self.train_data)
        self.learner.train()
        self.started = time.perf_counter() - self.elapsed
        self.resumed_from = progress.done
        self.episodes = self.sampler.iter_indices()
        # Skip the episodes a resumed run has already seen, so the sequence stays the seed's.
        for _ in range(progress.done * self.config.meta_batch):
            next(self.episodes)

    def _gather(self) -> torch.Tensor:
        episode = self.sampler.gather(self.train_data.data, next(self.episodes))
        return episode.to(self.device, non_blocking=True)

    def run_unit(self, index: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        _accumulate_gradient(
            self.learner, self._gather, self.amp.autocast, self.scaler, self.config.meta_batch, self.window
        )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()

    def postfix(self, done: int) -> dict[str, str] | None:
        if done % 20:
            return None
        loss, acc, n = self.window
        return {"loss": f"{loss / n:.3f}", "acc": f"{acc / n:.3f}"}

    def validates_after(self, done: int) -> bool:
        return done % self.config.val_every == 0

    def validate(self, done: int) -> float:
        """Validation accuracy (without validation data: the step, so the latest is kept); logs the row."""
        val_acc = float("nan")
        if self.val_data is not None:
            self.learner.eval()
            val_acc = _episode_accuracy(self.learner, self.val_data, self.config, self.device)
            self.learner.train()
        loss, acc, n = self.window[0], self.window[1], max(self.window[2], 1)
        lr, seconds = self.schedule.get_last_lr()[0], time.perf_counter() - self.started
        self.rows.append(
            [str(done), f"{loss / n:.5f}", f"{acc / n:.5f}", f"{val_acc:.5f}", f"{lr:.3g}", f"{seconds:.1f}"]
        )
        self.elapsed = time.perf_counter() - self.started
        self.window = [0.0, 0.0, 0]
        return val_acc if self.val_data is not None else float(done)

    def keep_best(self, out: Path | None, done: int, score: float) -> None:
        self.meta["val_accuracy"] = None if self.val_data is None else score
        self.meta["best_step"] = done
        save_checkpoint(out, self.learner, self.meta)

    def training_state(self) -> dict:
        return train_state(self.learner, self.optimizer, self.schedule, self.scaler, {})

    def state(self, progress: RunProgress) -> dict:
        run = {"step": progress.done, "best_acc": progress.best_score, "best_step": progress.best}
        run.update(bad_rounds=progress.bad_rounds, elapsed=self.elapsed, stopped_early=progress.stopped_early)
        run["rows"] = self.rows
        return train_state(self.learner, self.optimizer, self.schedule, self.scaler, run)

    def after_state(self) -> None:
        write_log(self.files.log, self.rows)
        crash_point("train.log")


def _optimiser(learner: FewShotLearner, config: TrainConfig):
    """Adam and its step schedule (``lr_step = 0``: a constant learning rate)."""
    optimizer = torch.optim.Adam(learner.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_step if config.lr_step > 0 else config.steps + 1, gamma=config.lr_gamma
    )
    return optimizer, schedule


def _checkpoint_metadata(metadata: dict[str, Any] | None, config: TrainConfig, train_data: LabeledTensors):
    """The checkpoint's metadata: the caller's, plus the training settings, data set and preprocessing."""
    meta = dict(metadata or {})
    meta["train"] = {k: v for k, v in asdict(config).items() if k != "device"}
    meta["dataset"] = {k: v for k, v in train_data.info.items() if k != "preprocessing"}
    if "preprocessing" not in meta:
        prep = preprocessing_from_data(train_data)
        if prep is not None:
            meta["preprocessing"] = prep.to_dict()
    return meta


def _accumulate_gradient(
    learner: FewShotLearner, gather, autocast, scaler, meta_batch: int, window: list
) -> None:
    """One meta-step's gradient into ``.grad``; adds its loss, accuracy and episode count to `window`.

    A learner that ``runs_meta_batch`` gets the meta-batch in one ``meta_batch_backward`` call and
    accumulates its gradient itself (vectorised, or freeing each task's graph early: MAML);
    others get ``episode_loss`` per episode.
    """
    if learner.runs_meta_batch:
        batch = [gather() for _ in range(meta_batch)]
        loss_value, acc_value = learner.meta_batch_backward(batch, autocast=autocast, scale=scaler.scale)
        window[0] += loss_value * meta_batch
        window[1] += acc_value * meta_batch
        window[2] += meta_batch
        return
    for _ in range(meta_batch):
        episode = gather()
        with autocast():
            loss, acc = learner.episode_loss(episode)
        scaler.scale(loss / meta_batch).backward()
        window[0] += loss.item()
        window[1] += acc.item()
        window[2] += 1


__all__ = ["CLI_OPTIONS", "MetaTraining", "TrainConfig", "TrainResult", "train"]
