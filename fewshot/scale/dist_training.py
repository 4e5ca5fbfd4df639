"""Meta-training on several processes: `train_distributed` and the launcher behind ``--nproc``.

Every rank builds the same model from the seed, restores the same state when resuming and
takes its part of each meta-step (`fewshot.scale.distributed`); the gradients are summed over
ranks before the one optimiser step, so every rank holds the same weights. Only rank 0 writes:
it holds the run's lock and ``run.json`` (`fewshot.runs.open_run`), validates, keeps the best
checkpoint, the state and the log; the score it validates is broadcast so that early stopping
stops every rank at the same step. The world size is not part of a run's settings: a run
started on 2 processes resumes on 2 (or on 1) from its last state.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError
from fewshot.scale.distributed import (
    EpisodeLoss,
    RankEpisodes,
    Ranks,
    all_reduce_gradients,
    all_reduce_sums,
    broadcast_buffers,
    broadcast_float,
    check_world,
    init_distributed,
)
from fewshot.training import MetaTraining


def rank_meta_gradient(
    learner, episodes: list, meta_batch: int, world: int, ddp=None, autocast=nullcontext, scale=lambda x: x
) -> list[float]:
    """This rank's part of a meta-step's gradient into ``.grad``: with `ddp` (a
    DistributedDataParallel over `EpisodeLoss`) through its hooks, else (MAML & co.) through the
    learner's ``meta_batch_backward`` and the explicit all-reduce. After it every rank holds the
    single-process meta-gradient of the whole meta-batch. Returns ``[loss sum, accuracy sum,
    episodes]`` of this rank's `episodes`."""
    share = len(episodes) / meta_batch
    if ddp is None:
        loss, accuracy = learner.meta_batch_backward(episodes, autocast=autocast, scale=scale)
        all_reduce_gradients(learner.parameters(), share)
        return [loss * len(episodes), accuracy * len(episodes), float(len(episodes))]
    sums = [0.0, 0.0, float(len(episodes))]
    for i, episode in enumerate(episodes):
        with nullcontext() if i == len(episodes) - 1 else ddp.no_sync():
            with autocast():
                loss, accuracy = ddp(episode)
            # DDP averages over ranks: scaled so that the sum over all episodes is divided by B
            scale(loss * (world / meta_batch)).backward()
        sums[0] += loss.item()
        sums[1] += accuracy.item()
    return sums


class DistributedMetaTraining(MetaTraining):
    """`fewshot.training.MetaTraining` on one rank of a process group."""

    def __init__(self, ranks: Ranks, *args) -> None:
        super().__init__(*args)
        self.ranks = ranks
        self.writes = ranks.is_main  # read by `fewshot.run_loop`: only rank 0 writes files

    def start(self, progress, resumed: bool) -> None:
        if self.ranks.is_main:
            super().start(progress, resumed)  # also rewrites the log up to the state
        else:
            self.learner.train()
            self.started = time.perf_counter() - self.elapsed
            self.resumed_from = progress.done
        episodes = RankEpisodes(self.sampler, self.config.meta_batch, self.ranks.rank, self.ranks.world)
        self.steps = episodes.steps(progress.done)
        self.ddp = None
        if not self.learner.runs_meta_batch:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(EpisodeLoss(self.learner), device_ids=ids)

    def run_unit(self, index: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        gather = self.sampler.gather
        episodes = [
            gather(self.train_data.data, e).to(self.device, non_blocking=True) for _, e in next(self.steps)
        ]
        sums = self.rank_backward(episodes)
        loss, accuracy, count = all_reduce_sums(sums, self.device)
        self.window[0] += loss
        self.window[1] += accuracy
        self.window[2] += int(count)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if self.ddp is None:
            broadcast_buffers(self.learner)

    def rank_backward(self, episodes: list) -> list[float]:
        return rank_meta_gradient(
            self.learner,
            episodes,
            self.config.meta_batch,
            self.ranks.world,
            self.ddp,
            self.amp.autocast,
            self.scaler.scale,
        )

    def validate(self, done: int) -> float:
        if self.ranks.is_main:
            score = super().validate(done)
        else:
            self.window, score = [0.0, 0.0, 0], 0.0
        return broadcast_float(score, self.device)

    def keep_best(self, out: Path | None, done: int, score: float) -> None:
        if self.ranks.is_main:
            super().keep_best(out, done, score)


def _share(problem: str | None) -> str | None:
    """Rank 0's `problem` (a refusal, or None) on every rank."""
    import torch.distributed as dist

    box = [problem]
    dist.broadcast_object_list(box, 0)
    return box[0]


def train_distributed(
    ranks: Ranks,
    learner,
    train_data,
    out: str | Path,
    config,
    val_data=None,
    metadata: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool | None = True,
):
    """`fewshot.training.train` on rank ``ranks.rank`` of a group of ``ranks.world``; every
    rank calls it with the same arguments and gets the same `TrainResult`."""
    from fewshot.runs import RunFiles, check_output_file, finish_run, open_run
    from fewshot.training import TrainResult
    from fewshot.training_state import run_settings

    config.check()
    if not learner.meta_trainable:
        raise FewshotError(f"{type(learner).__name__} cannot be meta-trained (it has no episode_loss)")
    check_world(config.meta_batch, ranks.world)
    device = init_distributed(ranks, config.device)
    config.device = str(device)
    out = check_output_file(out, "--out", suffix="")
    settings = run_settings(learner, train_data, val_data, config, metadata)
    with ExitStack() as stack:
        problem, files = None, RunFiles(out)
        if ranks.is_main:
            try:
                files = stack.enter_context(open_run(out, settings, resume, "train", "this training run"))
            except FewshotError as err:
                problem = str(err)
        problem = _share(problem)
        if problem is not None:
            raise FewshotError(problem)
        from fewshot.run_loop import run_units

        task = DistributedMetaTraining(ranks, learner, train_data, files, config, val_data, metadata)
        run = run_units(task, files, progress if ranks.is_main else False)
        result = TrainResult(
            best_val_accuracy=run.best_score if val_data is not None else None,
            best_step=run.best,
            steps_done=run.done,
            seconds=round(time.perf_counter() - task.started, 1),
            stopped_early=run.stopped_early,
            checkpoint=str(files.out),
            resumed_from=task.resumed_from,
        )
        if ranks.is_main:
            finish_run(files, settings, "train", **asdict(result), config=asdict(config))
        _share(None)  # no rank leaves before rank 0 has finished the run
    return result


def check_launch(request, learner_class) -> None:
    """Refuse, before any process starts, a ``--nproc`` that cannot work."""
    from fewshot.learners.base import FewShotLearner
    from fewshot.scale.distributed import ranks_from_env

    if ranks_from_env() is not None:
        raise FewshotError("--nproc: this process already runs under a launcher (torchrun); drop --nproc")
    meta_batch = request.meta_batch
    if meta_batch is None and learner_class.train_defaults is FewShotLearner.train_defaults:
        meta_batch = 1  # the default of learners that declare none
    if meta_batch is not None:
        check_world(meta_batch, request.nproc)


def _rank_main(run, request):
    """One rank of ``fewshot train --nproc N`` (the launcher set the rank's environment):
    ``run(request)`` on one process, or its one-line refusal as ``("error", message)``."""
    from dataclasses import replace

    try:
        return run(replace(request, nproc=1, progress=False))
    except FewshotError as err:
        return ("error", str(err))


def launch(run, request, nproc: int):
    """``run(request)`` (`fewshot.workflows.train.meta_train` and a `TrainRequest`, or
    `fewshot.workflows.finetune.run_finetune` and a `FinetuneRequest`) on `nproc`
    local processes with torch's elastic launcher (what ``torchrun --standalone`` runs): rank
    0's result."""
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.2,
        start_method="spawn",
    )
    result = elastic_launch(config, _rank_main)(run, request)[0]
    if isinstance(result, tuple) and result and isinstance(result[0], str) and result[0] == "error":
        raise FewshotError(result[1])
    return result


__all__ = ["DistributedMetaTraining", "check_launch", "launch", "rank_meta_gradient", "train_distributed"]
