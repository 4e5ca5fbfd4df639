"""Meta-training step time on W gloo ranks (CPU) against one process: MAML and ProtoNet.

Each world size runs in fresh processes (torch's `start_processes`, as `fewshot train --nproc`
does through the elastic launcher): every rank builds the same Conv-4 learner, takes its part
of each meta-batch (`fewshot.scale.distributed.RankEpisodes`), computes its part of the
meta-gradient (`fewshot.scale.dist_training.rank_meta_gradient`: the explicit all-reduce for
MAML, DistributedDataParallel for ProtoNet) and steps Adam. Threads per rank = cores / W, so
every world size uses the same cores. Reported: median seconds per meta-step (after warm-up
steps) and the speed-up over one process; the first step's all-reduced meta-gradient and rank
0's parameters after the steps are checked against the 1-process run's (max abs difference,
beside the gradient's largest value; Adam turns small differences in near-zero gradients, such
as those of a convolution bias before BatchNorm, into steps of up to lr, so the weights drift
further apart than the gradients differ).

    python benchmarks/bench_distributed.py                          # 1 and 2 ranks, 20 steps
    python benchmarks/bench_distributed.py --worlds 1 2 4 --steps 50 --out dist.json

Timings need a quiet machine: on a loaded one, ranks wait for each other at every all-reduce.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, machine_line, markdown_table, write_json  # noqa: E402

METHODS = {"maml": ("maml", {"strategy": "loop", "inner_steps": 1}), "protonet": ("protonet", {})}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(args):
    import torch

    from fewshot.data.tensors import LabeledTensors

    g = torch.Generator().manual_seed(0)
    classes, per = 40, args.shots + args.queries + 4  # every class can fill an episode
    x = torch.rand(classes, 1, 28, 28, generator=g).repeat_interleave(per, 0)
    x = (x + 0.3 * torch.rand(len(x), 1, 28, 28, generator=g)).clamp(0, 1)
    return LabeledTensors(
        x, torch.arange(classes).repeat_interleave(per), [f"c{i}" for i in range(classes)], {}
    )


def rank_main(rank: int, world: int, port: int, args, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    import torch

    from fewshot.build import build_learner
    from fewshot.encoders.conv4 import Conv4
    from fewshot.sampling import EpisodeSampler
    from fewshot.scale.dist_training import rank_meta_gradient
    from fewshot.scale.distributed import EpisodeLoss, RankEpisodes, Ranks, init_distributed

    threads = max(1, args.cores // world)
    if world > 1:
        init_distributed(Ranks(rank, world, rank), "cpu")
    torch.set_num_threads(threads)
    method, options = METHODS[args.method]
    torch.manual_seed(0)
    learner = build_learner(method, Conv4(), options, context={"ways": args.ways}, seed=None)
    learner.train()
    data = _data(args)
    total = args.warmup + args.steps
    sampler = EpisodeSampler(
        data.labels, args.ways, args.shots, args.queries, episodes=args.meta_batch * total
    )
    steps = RankEpisodes(sampler, args.meta_batch, rank, world).steps(0)
    ddp = None
    if world > 1 and not learner.runs_meta_batch:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(EpisodeLoss(learner))
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    seconds, first_grad = [], {}
    for step in range(total):
        started = time.perf_counter()
        episodes = [sampler.gather(data.data, e) for _, e in next(steps)]
        optimizer.zero_grad(set_to_none=True)
        if world > 1:
            rank_meta_gradient(learner, episodes, args.meta_batch, world, ddp)
        else:
            rank_meta_gradient_single(learner, episodes)
        if step == 0:  # the all-reduced meta-gradient, before Adam turns float noise into steps
            first_grad = {
                k: p.grad.detach().clone() for k, p in learner.named_parameters() if p.grad is not None
            }
        optimizer.step()
        if step >= args.warmup:
            seconds.append(time.perf_counter() - started)
    if rank == 0:
        # parameters only: BatchNorm's running statistics are rank 0's own under DDP (its
        # buffers are broadcast), so they differ from one process's by design
        state = {k: v.detach().clone() for k, v in learner.named_parameters()}
        torch.save({"seconds": seconds, "state": state, "grad": first_grad, "threads": threads}, out)


def rank_meta_gradient_single(learner, episodes) -> None:
    """One process: the whole meta-batch's mean loss (as `fewshot.training` does)."""
    if learner.runs_meta_batch:
        learner.meta_batch_backward(episodes)
        return
    for episode in episodes:
        loss, _ = learner.episode_loss(episode)
        (loss / len(episodes)).backward()


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - v.float()).abs().max()) for k, v in b.items())


def run_world(world: int, args, folder: Path) -> dict:
    import torch

    out = folder / f"w{world}.pt"
    torch.multiprocessing.start_processes(
        rank_main, args=(world, _port(), args, str(out)), nprocs=world, start_method="spawn"
    )
    return torch.load(out, weights_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--meta-batch", type=int, default=8)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads shared by the ranks")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.methods:
            args.method = name
            found = {w: run_world(w, args, Path(tmp)) for w in args.worlds}
            base = statistics.median(found[args.worlds[0]]["seconds"])
            for world, got in found.items():
                median = statistics.median(got["seconds"])
                base_run = found[args.worlds[0]]
                diff = max_diff(got["state"], base_run["state"])
                grad = max_diff(got["grad"], base_run["grad"])
                scale = max(float(v.abs().max()) for v in base_run["grad"].values())
                grads = f"{grad:.1e} (of {scale:.1e})"
                speed = round(base / median, 2)
                rows.append([name, world, got["threads"], round(median, 4), speed, grads, f"{diff:.1e}"])
                results[f"{name}/{world}"] = {
                    "median_s": median,
                    "seconds": got["seconds"],
                    "max_first_grad_diff": grad,
                    "max_first_grad": scale,
                    "max_weight_diff": diff,
                }
    header = ["method", "ranks", "threads/rank", "s / step", "speed-up", "max |g - g_1|", "max |w - w_1|"]
    print(machine_line(machine()))
    print(f"meta-batch {args.meta_batch}, {args.ways}-way {args.shots}-shot, {args.queries} queries, Conv-4")
    print(markdown_table(header, rows))
    if args.out:
        write_json(args.out, {"settings": {k: str(v) for k, v in vars(args).items()}, "results": results})


if __name__ == "__main__":
    main()
