"""One training loop for every learner that defines ``episode_loss``.

Episodes come from an `EpisodeSampler` over the training data; Adam with a step schedule;
validation episodes on held-out classes every ``val_every`` steps; the best checkpoint is
kept; early stopping after ``patience`` validations without improvement; the run can resume
from its last state after an interruption; a progress bar shows loss and accuracy; every
validation is logged to ``log.csv`` and the run's summary to ``run.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fewshot.checkpoints import atomic_write_bytes, save_checkpoint
from fewshot.data.tensors import LabeledTensors
from fewshot.device import autocast_dtype, resolve_device
from fewshot.errors import CheckpointError
from fewshot.learners.base import FewShotLearner
from fewshot.preprocessing import preprocessing_from_data
from fewshot.sampling import EpisodeSampler


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


@dataclass
class TrainResult:
    best_val_accuracy: float
    best_step: int
    steps_done: int
    seconds: float
    stopped_early: bool
    checkpoint: str


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


LOG_HEADER = ["step", "train_loss", "train_accuracy", "val_accuracy", "lr", "seconds"]


def _open_log(log_path: Path, start_step: int):
    """The validation log, opened for appending; a resumed run drops rows past its state.

    Rows written after the last saved state (an interruption between the two writes) would
    otherwise appear twice.
    """
    rows: list[list[str]] = []
    if start_step > 0 and log_path.exists():
        with open(log_path, newline="") as handle:
            rows = [r for r in csv.reader(handle) if r and r[0] != "step" and int(r[0]) <= start_step]
    handle = open(log_path, "w", newline="")  # noqa: SIM115 - the caller closes it
    writer = csv.writer(handle)
    writer.writerow(LOG_HEADER)
    writer.writerows(rows)
    handle.flush()
    return handle


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
    state, for resuming), ``<out>.log.csv`` and ``<out>.run.json``.
    """
    from tqdm.auto import tqdm

    from fewshot.progress import show_progress

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state_path = out.with_name(out.name + ".state.pt")
    log_path = out.with_name(out.name + ".log.csv")
    summary_path = out.with_name(out.name + ".run.json")
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
    optimizer = torch.optim.Adam(learner.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_step if config.lr_step > 0 else config.steps + 1, gamma=config.lr_gamma
    )
    amp_dtype = autocast_dtype(device) if config.mixed_precision else None
    # float16 (GPUs without bfloat16) needs loss scaling; bfloat16 and float32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    start_step, best_acc, best_step, bad_rounds, elapsed = 0, -math.inf, 0, 0, 0.0
    if resume and state_path.exists():
        try:
            state = torch.load(state_path, map_location=device, weights_only=True)
            learner.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            if "torch_rng" in state:  # learners with dropout or random augmentation
                torch.set_rng_state(state["torch_rng"].cpu())
            if "cuda_rng" in state and device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        except Exception as err:  # noqa: BLE001 - any damage to the state file means no resume
            raise CheckpointError(
                f"cannot resume from {state_path} ({err}); delete it to start over"
            ) from err
        start_step, best_acc, best_step = (
            int(state["step"]),
            float(state["best_acc"]),
            int(state["best_step"]),
        )
        bad_rounds, elapsed = int(state["bad_rounds"]), float(state["elapsed"])

    meta = dict(metadata or {})
    meta["train"] = {k: v for k, v in asdict(config).items() if k != "device"}
    meta["dataset"] = {k: v for k, v in train_data.info.items() if k != "preprocessing"}
    if "preprocessing" not in meta:
        prep = preprocessing_from_data(train_data)
        if prep is not None:
            meta["preprocessing"] = prep.to_dict()
    log_file = _open_log(log_path, start_step)
    log = csv.writer(log_file)

    learner.train()
    window_loss, window_acc, window_n = 0.0, 0.0, 0
    stopped_early = False
    started = time.perf_counter() - elapsed
    bar = tqdm(
        total=config.steps, initial=start_step, desc="train", unit="ep", disable=not show_progress(progress)
    )
    episodes = sampler.iter_indices()
    # Skip the episodes a resumed run has already seen, so the sequence stays the seed's.
    for _ in range(start_step * config.meta_batch):
        next(episodes)
    step = start_step
    # Learners that define meta_batch_backward(episodes, autocast, scale) get the meta-batch in
    # one call and accumulate its gradient themselves (vectorised, or freeing each task's graph
    # early); others get episode_loss per episode.
    batch_backward = getattr(learner, "meta_batch_backward", None)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()

    try:
        for step in range(start_step + 1, config.steps + 1):
            optimizer.zero_grad(set_to_none=True)
            if batch_backward is not None:  # the learner runs the whole meta-batch itself (MAML)
                batch = [
                    sampler.gather(train_data.data, next(episodes)).to(device, non_blocking=True)
                    for _ in range(config.meta_batch)
                ]
                loss_value, acc_value = batch_backward(batch, autocast=autocast, scale=scaler.scale)
                window_loss += loss_value * config.meta_batch
                window_acc += acc_value * config.meta_batch
                window_n += config.meta_batch
            for _ in range(config.meta_batch if batch_backward is None else 0):
                episode = sampler.gather(train_data.data, next(episodes)).to(device, non_blocking=True)
                with autocast():
                    loss, acc = learner.episode_loss(episode)
                scaler.scale(loss / config.meta_batch).backward()
                window_loss += loss.item()
                window_acc += acc.item()
                window_n += 1
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{window_loss / window_n:.3f}", acc=f"{window_acc / window_n:.3f}")
            if step % config.val_every == 0 or step == config.steps:
                val_acc = float("nan")
                if val_data is not None:
                    learner.eval()
                    val_acc = _episode_accuracy(learner, val_data, config, device)
                    learner.train()
                # Without validation data there is nothing to select on: the latest step is kept.
                score = val_acc if val_data is not None else float(step)
                log.writerow(
                    [
                        step,
                        f"{window_loss / max(window_n, 1):.5f}",
                        f"{window_acc / max(window_n, 1):.5f}",
                        f"{val_acc:.5f}",
                        f"{schedule.get_last_lr()[0]:.3g}",
                        f"{time.perf_counter() - started:.1f}",
                    ]
                )
                log_file.flush()
                window_loss, window_acc, window_n = 0.0, 0.0, 0
                if score > best_acc:
                    best_acc, best_step, bad_rounds = score, step, 0
                    meta["val_accuracy"] = None if val_data is None else val_acc
                    meta["best_step"] = step
                    meta["train_seconds"] = round(time.perf_counter() - started, 1)
                    save_checkpoint(out, learner, meta)
                else:
                    bad_rounds += 1
                state = {
                    "model": learner.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                    "best_acc": best_acc,
                    "best_step": best_step,
                    "bad_rounds": bad_rounds,
                    "elapsed": time.perf_counter() - started,
                    "scaler": scaler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                }
                if device.type == "cuda":
                    state["cuda_rng"] = torch.cuda.get_rng_state(device)
                buffer = io.BytesIO()
                torch.save(state, buffer)
                atomic_write_bytes(state_path, buffer.getvalue())
                if config.patience and bad_rounds >= config.patience:
                    stopped_early = True
                    break
    finally:
        bar.close()
        log_file.close()

    result = TrainResult(
        best_val_accuracy=best_acc if val_data is not None else float("nan"),
        best_step=best_step,
        steps_done=step,
        seconds=round(time.perf_counter() - started, 1),
        stopped_early=stopped_early,
        checkpoint=str(out),
    )
    atomic_write_bytes(
        summary_path, json.dumps({**asdict(result), "config": asdict(config)}, indent=2).encode()
    )
    return result
