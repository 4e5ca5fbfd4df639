"""One training loop for every meta-trainable learner (``meta_trainable``: it defines ``episode_loss``).

Episodes come from an `EpisodeSampler` over the training data; Adam with a step schedule;
validation episodes on held-out classes every ``val_every`` steps; the best checkpoint is
kept; early stopping after ``patience`` validations without improvement; a progress bar
shows loss and accuracy; every validation is logged to ``log.csv`` and the run's settings
and summary to ``run.json``.

Resuming: at every validation the run writes, each atomically and in this order, the best
checkpoint (when it improved), the state (weights, optimiser, schedule, RNG, counters and
the log rows) and the log. The state is the commit point: a run killed anywhere and run
again with the same settings resumes from its last state and ends with exactly the files of
an uninterrupted run (timing fields aside). Other settings are refused (`fewshot.runs`).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fewshot.checkpoints import save_checkpoint
from fewshot.data.tensors import LabeledTensors
from fewshot.device import autocast_dtype, resolve_device
from fewshot.errors import FewshotError
from fewshot.faults import crash_point
from fewshot.learners.base import FewShotLearner
from fewshot.preprocessing import preprocessing_from_data
from fewshot.runs import RunFiles, check_output_file, finish_run, open_run
from fewshot.sampling import EpisodeSampler
from fewshot.training_state import load_train_state, run_settings, save_train_state, write_log

CLI_OPTIONS = {"ways", "shots", "queries", "steps", "lr", "lr_step", "meta_batch", "val_every"}
CLI_OPTIONS |= {"val_episodes", "patience", "seed"}


@dataclass
class TrainConfig:
    """Hyperparameters of a meta-training run (episodes are counted in ``steps``)."""

    ways: int = 60
    shots: int = 1
    queries: int = 5
    steps: int = 10_000
    lr: float = 1e-3
    lr_step: int = 2_000  # multiply the learning rate by lr_gamma every lr_step steps; 0 = constant
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    meta_batch: int = 1  # episodes whose losses are averaged per optimiser step (one meta-step)
    val_ways: int = 5
    val_shots: int = 1
    val_queries: int = 15
    val_episodes: int = 200
    val_every: int = 500
    patience: int = 0  # validations without improvement before stopping; 0 = never stop early
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True  # used on CUDA only
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse impossible settings in one line naming the option (``--steps``, ...)."""
        minimum = {"ways": 2, "val_ways": 2, "lr_step": 0, "patience": 0, "seed": 0}
        for name in ("shots", "queries", "steps", "meta_batch", "val_shots", "val_queries"):
            minimum[name] = 1
        minimum.update(val_episodes=1, val_every=1)
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise FewshotError(f"{_option(name)} must be a whole number of at least {low}, got {value!r}")
        for name in ("lr", "lr_gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise FewshotError(f"{_option(name)} must be a positive number, got {value!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise FewshotError(f"weight_decay must be zero or positive, got {self.weight_decay!r}")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-") if name in CLI_OPTIONS else f"TrainConfig.{name}"


@dataclass
class TrainResult:
    best_val_accuracy: float | None  # None when trained without validation data
    best_step: int
    steps_done: int
    seconds: float
    stopped_early: bool
    checkpoint: str
    resumed_from: int = 0  # the step an earlier, interrupted run had reached (0: a fresh run)


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
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    device = resolve_device(config.device)
    learner.to(device)
    torch.manual_seed(config.seed)
    sampler = EpisodeSampler(
        train_data.labels,
        config.ways,
        config.shots,
        config.queries,
        episodes=config.steps * config.meta_batch,
        seed=config.seed,
    )
    optimizer, schedule = _optimiser(learner, config)
    amp_dtype = autocast_dtype(device) if config.mixed_precision else None
    # float16 (GPUs without bfloat16) needs loss scaling; bfloat16 and float32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    run = {"step": 0, "best_acc": -math.inf, "best_step": 0, "bad_rounds": 0, "elapsed": 0.0}
    run.update(stopped_early=False, rows=[])
    if files.state.exists():
        run = load_train_state(files.state, device, learner, optimizer, schedule, scaler)
    start_step = run["step"]
    write_log(files.log, run["rows"])  # drops rows a killed run wrote after its last state

    meta = _checkpoint_metadata(metadata, config, train_data)

    learner.train()
    window = [0.0, 0.0, 0]  # loss sum, accuracy sum, episodes since the last validation
    started = time.perf_counter() - run["elapsed"]
    bar = tqdm(
        total=config.steps, initial=start_step, desc="train", unit="ep", disable=not show_progress(progress)
    )
    episodes = sampler.iter_indices()
    # Skip the episodes a resumed run has already seen, so the sequence stays the seed's.
    for _ in range(start_step * config.meta_batch):
        next(episodes)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()

    def gather():
        return sampler.gather(train_data.data, next(episodes)).to(device, non_blocking=True)

    first = config.steps + 1 if run["stopped_early"] else start_step + 1
    try:
        for step in range(first, config.steps + 1):
            optimizer.zero_grad(set_to_none=True)
            _accumulate_gradient(learner, gather, autocast, scaler, config.meta_batch, window)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{window[0] / window[2]:.3f}", acc=f"{window[1] / window[2]:.3f}")
            if step % config.val_every == 0 or step == config.steps:
                run["step"] = step
                _validate(learner, files, config, val_data, device, meta, run, window, started, schedule)
                window = [0.0, 0.0, 0]
                save_train_state(files.state, device, learner, optimizer, schedule, scaler, run)
                crash_point("train.state")
                write_log(files.log, run["rows"])
                crash_point("train.log")
                if run["stopped_early"]:
                    break
    finally:
        bar.close()

    return TrainResult(
        best_val_accuracy=run["best_acc"] if val_data is not None else None,
        best_step=run["best_step"],
        steps_done=run["step"],
        seconds=round(time.perf_counter() - started, 1),
        stopped_early=run["stopped_early"],
        checkpoint=str(files.out),
        resumed_from=start_step,
    )


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


def _validate(learner, files, config, val_data, device, meta, run, window, started, schedule) -> None:
    """Validate, log the row, and write the checkpoint if it is the best so far (in `run`)."""
    step = run["step"]
    val_acc = float("nan")
    if val_data is not None:
        learner.eval()
        val_acc = _episode_accuracy(learner, val_data, config, device)
        learner.train()
    # Without validation data there is nothing to select on: the latest step is kept.
    score = val_acc if val_data is not None else float(step)
    n = max(window[2], 1)
    run["rows"].append(
        [
            str(step),
            f"{window[0] / n:.5f}",
            f"{window[1] / n:.5f}",
            f"{val_acc:.5f}",
            f"{schedule.get_last_lr()[0]:.3g}",
            f"{time.perf_counter() - started:.1f}",
        ]
    )
    run["elapsed"] = time.perf_counter() - started
    if score > run["best_acc"]:
        run.update(best_acc=score, best_step=step, bad_rounds=0)
        meta["val_accuracy"] = None if val_data is None else val_acc
        meta["best_step"] = step
        save_checkpoint(files.out, learner, meta)
        crash_point("train.checkpoint")
    else:
        run["bad_rounds"] += 1
    if config.patience and run["bad_rounds"] >= config.patience:
        run["stopped_early"] = True
