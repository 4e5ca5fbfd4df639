"""ProtoNet accuracy on Omniglot: 5/20-way 1/5-shot, 1,000 episodes each, as a markdown table.

Vinyals split (default): the 1,692 test classes (423 characters x 4 rotations), the protocol
of Snell et al. (2017). Lake split (``--split lake``, or a checkpoint trained on it): the 20
evaluation alphabets (659 characters, no rotations).

Queries: 15 per class, the default test query count of the reference ProtoNet code
(``--data.test_query``, "default: 15"); the paper trains with 5 queries per class and reports
test accuracy averaged over 1,000 episodes. Change it with ``--queries``.

    python benchmarks/protonet_omniglot.py --checkpoint fewshot/models/protonet-conv4-omniglot.safetensors
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

PAPER = {(5, 1): 98.8, (5, 5): 99.7, (20, 1): 96.0, (20, 5): 98.9}  # Snell et al. 2017, Table 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=None, help="Default: the shipped checkpoint.")
    parser.add_argument("--split", default=None, help="vinyals or lake (default: the checkpoint's).")
    parser.add_argument("--tasks", default="5x1,5x5,20x1,20x5", help="ways x shots, comma separated.")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    from fewshot.checkpoints import load_learner
    from fewshot.data.omniglot import load_omniglot
    from fewshot.device import resolve_device
    from fewshot.evaluation import evaluate
    from fewshot.models import DEFAULT_CHECKPOINT

    device = resolve_device(args.device)
    checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
    learner, meta = load_learner(checkpoint, device)
    trained = meta.get("dataset") or {}
    split = args.split or trained.get("split") or "vinyals"
    subset = "test" if split == "vinyals" else "evaluation"
    data = load_omniglot(split, subset, args.data_dir, int(trained.get("image_size", 28)))
    # embed the test set once for all four tasks
    embeddings = learner.encoder.encode_batched(data.data).to(device)
    from fewshot.data.tensors import LabeledTensors
    from fewshot.encoders.base import IdentityEncoder

    head = type(learner)(IdentityEncoder(embeddings.shape[1]), **learner.config()).to(device)
    cached = LabeledTensors(embeddings, data.labels, data.class_names, data.info)

    print(
        f"checkpoint: {checkpoint} ({meta.get('learner')}, {meta.get('encoder')}, "
        f"trained on {trained.get('split', '?')} {trained.get('subset', '')}, "
        f"best step {meta.get('best_step')})"
    )
    print(
        f"test data: Omniglot {split} {subset}: {data.n_classes} classes, {len(data)} images; "
        f"{args.episodes} episodes per task, {args.queries} queries per class, seed {args.seed}"
    )
    print(f"device: {device}; torch {torch.__version__}; {platform.machine()}")
    print()
    print("| task | accuracy (95% CI) | Snell et al. 2017 | episodes | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for task in args.tasks.split(","):
        ways, shots = (int(v) for v in task.lower().split("x"))
        started = time.perf_counter()
        result = evaluate(
            head, cached, ways, shots, args.queries, args.episodes, args.seed, device, progress=False
        )
        paper = f"{PAPER[(ways, shots)]:.1f}%" if split == "vinyals" and (ways, shots) in PAPER else "-"
        print(
            f"| {ways}-way {shots}-shot | {100 * result.mean:.2f}% +- {100 * result.ci95:.2f}% | {paper} | "
            f"{result.n_episodes} | {time.perf_counter() - started:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
