"""Fine-tuning on several processes through DistributedDataParallel: `finetune_distributed`.

Launched like meta-training (``torchrun --nproc-per-node N -m fewshot finetune ...`` or
``fewshot finetune --nproc N``; `fewshot.scale.distributed`). Every rank builds the same
classifier from the seed and draws the same data order and augmentation from the same
generator, so each step's batch is the single-process batch; rank ``r`` takes the contiguous
part `rank_share` of it. Its loss is the sum of its items' cross-entropies times ``W / B``:
DistributedDataParallel averages gradients over the ``W`` ranks, which gives the gradient of
the single-process mean over the ``B`` items, and every rank takes the same optimiser step.

Only rank 0 writes (the run's lock, ``run.json``, the best checkpoint, the state); every rank
validates the same weights on the same items, so early stopping agrees without a message.
BatchNorm layers being trained see their rank's part of the batch; on GPUs they are
`torch.nn.SyncBatchNorm` (the statistics of the whole batch, as one process); on CPUs (gloo)
SyncBatchNorm does not run: each rank normalises with its part's statistics and the running
statistics are rank 0's, broadcast after every step. Where no BatchNorm trains (frozen or
absent), 2 ranks compute the single-process gradient.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from fewshot.errors import FewshotError
from fewshot.scale.distributed import (
    Ranks,
    all_reduce_sums,
    broadcast_buffers,
    init_distributed,
    rank_share,
)
from fewshot.transfer.finetune_loop import FinetuneEpochs


def rank_loss(logits: torch.Tensor, y: torch.Tensor, batch: int, world: int) -> torch.Tensor:
    """The loss rank ``r`` back-propagates for its part (`logits` ``(b_r, C)``, `y` ``(b_r,)``)
    of a batch of `batch` items: averaged over `world` ranks (as DDP does), the gradients of
    these losses are the gradient of the mean cross-entropy over the whole batch."""
    return F.cross_entropy(logits.float(), y, reduction="sum") * (world / batch)


class DistributedFinetuneEpochs(FinetuneEpochs):
    """`fewshot.transfer.finetune_loop.FinetuneEpochs` on one rank of a process group."""

    def __init__(self, ranks: Ranks, *args) -> None:
        super().__init__(*args)
        self.ranks = ranks
        self.writes = ranks.is_main  # read by `fewshot.run_loop`: only rank 0 writes files
        if self.device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self._ddp, self._trainable = None, None

    def ddp(self):
        """DDP over the model, rebuilt when the trainable parameters change (gradual
        unfreezing): DDP registers the parameters that need a gradient when it is built."""
        from torch.nn.parallel import DistributedDataParallel

        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or trainable != self._trainable:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
            self._trainable = trainable
        return self._ddp

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        part = rank_share(len(y), self.ranks.rank, self.ranks.world)
        xs = x[part.start : part.stop].to(self.device, non_blocking=True)
        ys = y[part.start : part.stop].to(self.device, non_blocking=True)
        ddp = self.ddp()
        with self.amp.autocast():
            logits = ddp(xs)
            loss = rank_loss(logits, ys, len(y), self.ranks.world)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.device.type != "cuda":  # per-rank BatchNorm statistics: rank 0's everywhere
            broadcast_buffers(self.model)
        correct = float((logits.argmax(-1) == ys).sum())
        loss_sum, correct = all_reduce_sums([loss.item() * len(y) / self.ranks.world, correct], self.device)
        return loss_sum, int(correct)


def check_finetune_launch(request) -> None:
    """Refuse, before any process starts, a ``--nproc`` (or a torchrun group) that cannot work."""
    from fewshot.scale.distributed import ranks_from_env
    from fewshot.transfer.strategies import STRATEGIES

    ranks = ranks_from_env()
    if ranks is not None and request.nproc > 1:
        raise FewshotError("--nproc: this process already runs under a launcher (torchrun); drop --nproc")
    if request.strategy not in STRATEGIES:
        raise FewshotError(
            f"several processes train only the strategies {', '.join(STRATEGIES)}; "
            f"--strategy {request.strategy} is fitted in one pass: run it on one process"
        )
    check_batch(request.batch_size, ranks.world if ranks is not None else request.nproc)


def check_batch(batch_size: int, world: int) -> None:
    if batch_size < world:
        raise FewshotError(
            f"--batch-size {batch_size} cannot be shared by {world} processes: give at least "
            f"{world} items per step (each process takes part of every batch)"
        )


def _share(problem: str | None) -> str | None:
    from fewshot.scale.dist_training import _share as share

    return share(problem)


def finetune_distributed(
    ranks: Ranks,
    encoder: torch.nn.Module,
    data,
    config,
    out: str | Path,
    val_data=None,
    encoder_name: str = "conv4",
    metadata: dict[str, Any] | None = None,
    on_epoch=None,
    progress: bool = True,
    resume: bool = True,
):
    """`fewshot.transfer.finetune.finetune` on rank ``ranks.rank`` of ``ranks.world``; every
    rank calls it with the same arguments and gets the same model and result."""
    from fewshot.run_loop import run_units
    from fewshot.runs import RunFiles, check_output_file, finish_run, open_run
    from fewshot.transfer.finetune import split_items
    from fewshot.transfer.finetune_loop import finished_run, run_settings

    config.check()
    check_batch(config.batch_size, ranks.world)
    config.device = str(init_distributed(ranks, config.device))
    out = check_output_file(out, "--out", suffix="")
    if val_data is None:
        data, val_data = split_items(data, config.val_fraction, config.seed)
    settings = run_settings(encoder, encoder_name, data, val_data, config)
    with ExitStack() as stack:
        problem, files = None, RunFiles(out)
        if ranks.is_main:
            try:
                files = stack.enter_context(
                    open_run(out, settings, resume, "finetune", "this fine-tuning run")
                )
            except FewshotError as err:
                problem = str(err)
        problem = _share(problem)
        if problem is not None:
            raise FewshotError(problem)
        args = (encoder, data, val_data, config, encoder_name, metadata, on_epoch if ranks.is_main else None)
        task = DistributedFinetuneEpochs(ranks, *args)
        run = run_units(task, files, progress if ranks.is_main else False)
        _share(None)  # rank 0's last checkpoint is written before any rank reads it back
        model, result = finished_run(task, files, run)
        if ranks.is_main:
            finish_run(
                files, settings, "finetune", **{k: v for k, v in asdict(result).items() if k != "history"}
            )
        _share(None)  # no rank leaves before rank 0 has finished the run
    return model, result


__all__ = [
    "DistributedFinetuneEpochs",
    "check_batch",
    "check_finetune_launch",
    "finetune_distributed",
    "rank_loss",
]
