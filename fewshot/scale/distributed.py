"""torch.distributed for meta-training: ranks, the rank-aware episode sampler, the all-reduce.

Launched by ``torchrun --nproc-per-node N -m fewshot train ...`` (or ``fewshot train --nproc
N``, which runs torch's own elastic launcher): the launcher sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; `init_distributed` joins the group (``nccl`` on
GPUs, ``gloo`` on CPUs).

The single-process run's meta-step ``s`` uses episodes ``s*B .. s*B+B-1`` of the sampler's
sequence for the seed (``B`` = ``meta_batch``). With ``W`` ranks, rank ``r`` takes the
contiguous part `rank_share` of those ``B`` positions; the parts of all ranks are exactly
the ``B`` episodes (`RankEpisodes`). Each rank back-propagates the mean loss of its part,
scaled by its share ``b_r / B``; summing over ranks (`all_reduce_gradients`) gives the
single-process meta-gradient, up to the order of float additions.

- MAML, FOMAML, ANIL and Reptile (learners that ``runs_meta_batch``) differentiate through a
  functional inner loop, which DistributedDataParallel's hooks do not follow; their
  meta-gradients are all-reduced explicitly, and buffers broadcast from rank 0 after each step.
- Other learners (ProtoNet, ...) run through ``DistributedDataParallel`` over `EpisodeLoss`
  (which averages over ranks, hence the loss scale ``W * b_r / B``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fewshot.errors import FewshotError


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group: rank, world size, rank on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks_from_env() -> Ranks | None:
    """The ranks a launcher (torchrun) set in the environment, or None outside a group of 2+."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world < 2:
        return None
    rank = int(os.environ.get("RANK", "0"))
    return Ranks(rank, world, int(os.environ.get("LOCAL_RANK", str(rank))))


def init_distributed(ranks: Ranks, device: str = "auto") -> torch.device:
    """Join the process group (once) and return this rank's device: its own GPU, or the CPU."""
    import torch.distributed as dist

    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
    if not cuda:  # ranks on one machine share its cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, ranks.world)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", rank=ranks.rank, world_size=ranks.world)
    return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")


def rank_share(meta_batch: int, rank: int, world: int) -> range:
    """Positions (in ``0 .. meta_batch-1``) of a meta-step's episodes that `rank` takes."""
    return range(rank * meta_batch // world, (rank + 1) * meta_batch // world)


def check_world(meta_batch: int, world: int) -> None:
    if meta_batch < world:
        raise FewshotError(
            f"--meta-batch {meta_batch} cannot be shared by {world} processes: give at least "
            f"{world} episodes per step (each process takes part of the meta-batch)"
        )


class RankEpisodes:
    """The rank's part of each meta-step of a sampler's episode sequence.

    `steps(start)` yields, for meta-step ``start``, ``start + 1``, ..., the list of
    ``(position in the whole sequence, EpisodeIndices)`` this rank takes; over all ranks the
    lists are exactly the single-process meta-batches.
    """

    def __init__(self, sampler, meta_batch: int, rank: int = 0, world: int = 1) -> None:
        check_world(meta_batch, world)
        self.sampler, self.meta_batch = sampler, meta_batch
        self.share = rank_share(meta_batch, rank, world)

    def steps(self, start: int = 0) -> Iterator[list[tuple[int, object]]]:
        episodes = self.sampler.iter_indices()
        position = 0
        for _ in range(start * self.meta_batch):  # the seed's sequence, up to the resumed step
            next(episodes)
            position += 1
        while True:
            mine = []
            for j in range(self.meta_batch):
                try:
                    indices = next(episodes)
                except StopIteration:
                    return
                if j in self.share:
                    mine.append((position, indices))
                position += 1
            yield mine


def all_reduce_gradients(parameters, scale: float) -> None:
    """``grad <- sum over ranks of scale_r * grad_r`` for every parameter with a gradient, in
    one flat all-reduce. Parameters without a gradient stay without (every rank runs the same
    model, so they are the same on every rank)."""
    import torch.distributed as dist

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]) * scale
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP does."""
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer, 0)


def all_reduce_sums(values: list[float], device: torch.device) -> list[float]:
    """Sums over ranks of a few numbers (the step's loss, accuracy and episode count)."""
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_float(value: float, device: torch.device) -> float:
    """Rank 0's `value` on every rank."""
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


class EpisodeLoss(nn.Module):
    """A learner's ``episode_loss`` as a module's forward, for DistributedDataParallel."""

    def __init__(self, learner: nn.Module) -> None:
        super().__init__()
        self.learner = learner

    def forward(self, episode) -> tuple[torch.Tensor, torch.Tensor]:
        return self.learner.episode_loss(episode)


__all__ = [
    "EpisodeLoss",
    "RankEpisodes",
    "Ranks",
    "all_reduce_gradients",
    "all_reduce_sums",
    "broadcast_buffers",
    "broadcast_float",
    "check_world",
    "init_distributed",
    "rank_share",
    "ranks_from_env",
]
