"""Rank processes for tests/test_scale_distributed.py (spawned; fewshot is imported only after
the rank's environment is set, as under torchrun)."""

from __future__ import annotations

import os
from pathlib import Path

META_BATCH = 4
# method -> learner options: every meta-gradient path (MAML strategies, first order, ANIL,
# Reptile: the explicit all-reduce; ProtoNet: DistributedDataParallel)
METHODS = {
    "maml-loop": ("maml", {"strategy": "loop", "inner_steps": 2}),
    "maml-vmap": ("maml", {"strategy": "vmap", "inner_steps": 2}),
    "fomaml": ("fomaml", {"strategy": "loop"}),
    "anil": ("anil", {}),
    "reptile": ("reptile", {}),
    "protonet": ("protonet", {}),
}


def images(classes: int, per_class: int, seed: int):
    import torch

    from fewshot.data.tensors import LabeledTensors

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(classes, 1, 16, 16, generator=g).repeat_interleave(per_class, 0)
    x = x + 0.5 * torch.rand(len(x), 1, 16, 16, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return LabeledTensors(x, labels, [f"c{i}" for i in range(classes)], {"dataset": "synthetic"})


def learner(name: str):
    import torch

    from fewshot.build import build_learner
    from fewshot.encoders.conv4 import Conv4

    method, options = METHODS[name]
    torch.manual_seed(0)
    encoder = Conv4(in_channels=1, hidden=4, image_size=16)
    return build_learner(method, encoder, options, context={"ways": 3}, seed=None)


def sampler(data, steps: int = 1):
    from fewshot.sampling import EpisodeSampler

    return EpisodeSampler(data.labels, 3, 1, 2, episodes=META_BATCH * steps, seed=0)


def _environment(rank: int, world: int, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank), OMP_NUM_THREADS="1",
    )  # fmt: skip


def gradients(rank: int, world: int, port: int, out: str) -> None:
    """Every method's first meta-step gradient on this rank, and the episodes it took."""
    _environment(rank, world, port)
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from fewshot.scale.dist_training import rank_meta_gradient
    from fewshot.scale.distributed import EpisodeLoss, RankEpisodes, init_distributed, ranks_from_env

    init_distributed(ranks_from_env(), "cpu")
    data = images(6, 4, 0)
    found = {}
    for name in METHODS:
        model = learner(name)
        model.train()
        source = sampler(data)
        mine = next(RankEpisodes(source, META_BATCH, rank, world).steps(0))
        episodes = [source.gather(data.data, e) for _, e in mine]
        ddp = None if model.runs_meta_batch else DistributedDataParallel(EpisodeLoss(model))
        rank_meta_gradient(model, episodes, META_BATCH, world, ddp)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        found[name] = {"grads": grads, "positions": [p for p, _ in mine]}
    torch.save(found, Path(out) / f"rank{rank}.pt")


def train(rank: int, world: int, port: int, out: str, method: str, crash_at: int) -> None:
    """`train_distributed` (4 meta-steps, a state every 2; no validation data, so the last step
    is kept: validation scores depend on BatchNorm's running statistics, which each rank keeps
    from its own episodes) on this rank; rank 0 SIGKILLs itself at its `crash_at`-th crash
    point when that is not 0."""
    _environment(rank, world, port)
    if rank == 0 and crash_at:
        os.environ["FEWSHOT_CRASH_AT"] = str(crash_at)
    from fewshot.scale.dist_training import train_distributed
    from fewshot.scale.distributed import ranks_from_env

    train_distributed(ranks_from_env(), learner(method), images(6, 4, 0), out, config(), None, progress=False)


def config():
    from fewshot.training import TrainConfig

    cfg = TrainConfig(ways=3, shots=1, queries=2, steps=4, val_every=2, val_ways=3, val_queries=2)
    cfg.val_episodes, cfg.meta_batch, cfg.lr_step, cfg.device, cfg.lr = 2, META_BATCH, 0, "cpu", 1e-2
    return cfg
