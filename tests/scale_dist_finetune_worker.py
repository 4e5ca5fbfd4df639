"""Rank processes for tests/test_scale_dist_finetune.py (spawned; fewshot is imported only after
the rank's environment is set, as under torchrun)."""

from __future__ import annotations

import os
from pathlib import Path

from scale_dist_worker import _environment, images


def config(epochs: int = 1, batch_size: int = 8):
    from fewshot.transfer.finetune_config import FinetuneConfig

    return FinetuneConfig(
        strategy="full", epochs=epochs, batch_size=batch_size, patience=0, device="cpu",
        mixed_precision=False, lr=1e-2, head_lr=1e-2, val_fraction=0.25,
    )  # fmt: skip


def encoder():
    import torch

    from fewshot.encoders.conv4 import Conv4

    torch.manual_seed(0)
    return Conv4(in_channels=1, hidden=4, image_size=16)


def step_task(cls, *prefix):
    """A fine-tuning task ready for one step, every BatchNorm on its running statistics (no
    BatchNorm trains on batch statistics, so W ranks compute one process's gradient)."""
    import torch

    data = images(6, 4, 0)
    task = cls(*prefix, encoder(), data, data, config(), "conv4", None, None)
    task.model.train()
    for module in task.model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    return task, data


def one_step(task, data) -> dict:
    x, y = data.data[:8], data.labels[:8]
    loss, correct = task.train_batch(x, y)
    named = task.model.named_parameters()
    return {
        "grads": {n: p.grad.clone() for n, p in task.model.named_parameters() if p.grad is not None},
        "params": {n: p.detach().clone() for n, p in named},
        "sums": (loss, correct),
    }


def step(rank: int, world: int, port: int, out: str) -> None:
    """One DDP fine-tuning step on this rank's part of an 8-item batch."""
    _environment(rank, world, port)
    import torch

    from fewshot.scale.dist_finetune import DistributedFinetuneEpochs
    from fewshot.scale.distributed import init_distributed, ranks_from_env

    ranks = ranks_from_env()
    init_distributed(ranks, "cpu")
    torch.set_num_threads(1)
    task, data = step_task(DistributedFinetuneEpochs, ranks)
    torch.save(one_step(task, data), Path(out) / f"rank{rank}.pt")


def finetune(rank: int, world: int, port: int, out: str, crash_at: int) -> None:
    """`finetune_distributed` (3 epochs, every BatchNorm trained) on this rank; rank 0 SIGKILLs
    itself at its `crash_at`-th crash point when that is not 0."""
    _environment(rank, world, port)
    if rank == 0 and crash_at:
        os.environ["FEWSHOT_CRASH_AT"] = str(crash_at)
    from fewshot.scale.dist_finetune import finetune_distributed
    from fewshot.scale.distributed import ranks_from_env

    finetune_distributed(ranks_from_env(), encoder(), images(6, 4, 0), config(epochs=3), out, progress=False)
