"""ProtoNet evaluation speed: fewshot's cached evaluation vs easyfsl's evaluation loop.

Both evaluate the SAME Conv-4 model on the SAME episodes (drawn once by fewshot's sampler and
fed to easyfsl through its TaskSampler/DataLoader/`evaluate` loop), side by side in one run,
and the script checks that both report the same accuracy. easyfsl embeds every support and
query image of every episode; fewshot embeds each test image once and scores all episodes
over the cached embeddings. The ratio therefore grows with the number of image views the
episodes contain per distinct test image (reported as "views/item").

Needs easyfsl (``pip install --no-deps easyfsl pandas``; it imports pandas and matplotlib).

    python benchmarks/bench_eval_speed.py --classes 100 --episodes 60 --tasks 5x1,20x5
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def easyfsl_accuracy(model, data, episode_lists, ways, shots, queries, device):
    """easyfsl's own loop: TaskSampler-style batches through a DataLoader into utils.evaluate."""
    from easyfsl.methods import PrototypicalNetworks
    from easyfsl.samplers import TaskSampler
    from easyfsl.utils import evaluate

    class Items(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y.tolist()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

        def get_labels(self):
            return self.y

    class FixedTasks(TaskSampler):
        """easyfsl's TaskSampler, yielding the episodes fewshot drew instead of its own."""

        def __iter__(self):
            yield from episode_lists

    dataset = Items(data.data, data.labels)
    # TaskSampler.__init__ calls Sampler.__init__(data_source=None), which torch >= 2.2 refuses;
    # set the attributes its collate function reads instead.
    sampler = FixedTasks.__new__(FixedTasks)
    sampler.n_way, sampler.n_shot, sampler.n_query = ways, shots, queries
    sampler.n_tasks = len(episode_lists)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=0, collate_fn=sampler.episodic_collate_fn
    )
    classifier = PrototypicalNetworks(model).to(device)
    return evaluate(classifier, loader, device=str(device), use_tqdm=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=None, help="Conv-4 ProtoNet checkpoint (default: shipped).")
    parser.add_argument("--classes", type=int, default=100, help="Omniglot test classes used (0: all 1692).")
    parser.add_argument("--episodes", type=int, default=60)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--tasks", default="5x1,20x5", help="ways x shots, comma separated.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--easyfsl-folded",
        action="store_true",
        help="Also time easyfsl's loop on fewshot's inference form of the encoder (BatchNorm folded, "
        "channels-last): separates what caching gains from what the faster network gains.",
    )
    args = parser.parse_args()

    from fewshot.checkpoints import load_learner
    from fewshot.data.omniglot import load_omniglot
    from fewshot.data.splits import subset_classes
    from fewshot.device import resolve_device
    from fewshot.encoders import create_encoder
    from fewshot.encoders.inference import inference_form
    from fewshot.evaluation import evaluate
    from fewshot.learners.protonet import ProtoNet
    from fewshot.models import DEFAULT_CHECKPOINT
    from fewshot.sampling import EpisodeSampler

    device = resolve_device(args.device)
    checkpoint = args.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.exists() else None)
    if checkpoint:
        learner, _ = load_learner(checkpoint, device)
        model_name = str(checkpoint)
    else:  # speed does not depend on the weights
        torch.manual_seed(0)
        learner = ProtoNet(create_encoder("conv4")).to(device).eval()
        model_name = "Conv-4 (64 channels), random weights"
    data = load_omniglot("vinyals", "test")
    if args.classes:
        chosen = np.random.default_rng(args.seed).choice(data.n_classes, args.classes, replace=False)
        data = subset_classes(data, np.sort(chosen), "test")
    print(f"model: {model_name}; data: Omniglot vinyals test, {data.n_classes} classes, {len(data)} images")
    print(
        f"device: {device}; torch {torch.__version__}; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    print()
    folded_columns = " easyfsl on folded ep/s | speed-up vs it |" if args.easyfsl_folded else ""
    print(
        "| task | episodes | views/item | fewshot ep/s | easyfsl ep/s | speed-up |"
        f"{folded_columns} fewshot acc | easyfsl |"
    )
    print("| --- " * (8 + 2 * args.easyfsl_folded) + "|")
    for task in args.tasks.split(","):
        ways, shots = (int(v) for v in task.lower().split("x"))
        sampler = EpisodeSampler(
            data.labels, ways, shots, args.queries, episodes=args.episodes, seed=args.seed
        )
        episode_lists = list(sampler)  # the same episodes for both, drawn before timing
        views = args.episodes * ways * (shots + args.queries) / len(data)

        started = time.perf_counter()
        ours = evaluate(learner, data, sampler=sampler, device=device, progress=False)
        ours_s = time.perf_counter() - started

        started = time.perf_counter()
        with torch.inference_mode():
            theirs = easyfsl_accuracy(learner.encoder, data, episode_lists, ways, shots, args.queries, device)
        theirs_s = time.perf_counter() - started

        folded = ""
        if args.easyfsl_folded:
            form = inference_form(learner.encoder.eval()).to(memory_format=torch.channels_last)
            started = time.perf_counter()
            with torch.inference_mode():
                easyfsl_accuracy(form, data, episode_lists, ways, shots, args.queries, device)
            folded_s = time.perf_counter() - started
            learner.encoder.to(memory_format=torch.contiguous_format)  # in case the form shares layers
            folded = f" {args.episodes / folded_s:.2f} | {folded_s / ours_s:.1f}x |"

        print(
            f"| {ways}-way {shots}-shot, {args.queries} q | {args.episodes} | {views:.2f} | "
            f"{args.episodes / ours_s:.1f} | {args.episodes / theirs_s:.2f} | {theirs_s / ours_s:.1f}x |"
            f"{folded} {100 * ours.mean:.2f}% | {100 * theirs:.2f}% |",
            flush=True,
        )


if __name__ == "__main__":
    main()
