"""Continual learning (issue #17): split-Fashion-MNIST (5 experiences x 2 classes) and
split-Omniglot by alphabet, class- and task-incremental, every strategy, several seeds; final
average accuracy and average forgetting, mean with a Student-t 95% interval over seeds.

Trained strategies use a Conv-4 (64 channels, 28 px) from scratch, each seed with its own class
order and initial weights; the frozen-encoder ones (SimpleCIL, expandable) use
``--frozen-encoder`` (EfficientNet-Lite0 ImageNet weights by default; its embeddings are
computed once per data set). ``--avalanche`` also runs Avalanche 0.6.0 on the same stream,
initial weights, epochs, optimiser and memory for naive, EWC, LwF and replay
(`bench_continual_avalanche.py`, in its own virtual environment: never a dependency) and
reports the accuracy of both and the time ratio per experience.

    FEWSHOT_DATA_DIR=/work/shared/data python benchmarks/bench_continual.py \\
        --datasets fashion-mnist --scenarios class-il --strategies replay --seeds 0 --per-class 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine, machine_line, markdown_table, write_json

TRAINED = ("naive", "joint", "ewc", "mas", "lwf", "replay", "replay-ace", "gdumb", "multihead")
VARIANTS = {"replay-ace": ("replay", {"ace": True})}  # row name -> (strategy, its options)
FROZEN = ("expandable", "simplecil")
AVALANCHE = ("naive", "ewc", "lwf", "replay")


def ci95(values) -> float:
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def load(dataset: str, per_class: int, test_per_class: int, alphabets: int):
    """``(train, test, whole)`` of the benchmark's items (``whole`` keeps Omniglot's alphabets)."""
    from fewshot.continual.scenarios import item_split, subsample
    from fewshot.data.loading import load_dataset

    if dataset == "fashion-mnist":
        train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
        return subsample(train, per_class, 0), subsample(test, test_per_class, 0), None
    whole = load_dataset("omniglot", "background", "lake")
    keep = sorted(set(whole.class_groups))[:alphabets]
    classes = [c for c, g in enumerate(whole.class_groups) if g in keep]
    import torch

    from fewshot.data.tensors import LabeledTensors

    mask = torch.isin(whole.labels, torch.as_tensor(classes))
    remap = torch.full((whole.n_classes,), -1, dtype=torch.long)
    remap[classes] = torch.arange(len(classes))
    whole = LabeledTensors(
        whole.data[mask], remap[whole.labels[mask]], [whole.class_names[c] for c in classes],
        dict(whole.info), [whole.class_groups[c] for c in classes],
    )  # fmt: skip
    train, test = item_split(whole, 0.25, 0)
    return train, test, whole


def stream_for(train, test, whole, scenario: str, seed: int, tasks: int):
    from fewshot.continual import scenarios

    if whole is not None:  # one alphabet per experience, in name order
        parts, names = scenarios.group_splits(whole, tasks)
    else:
        parts, names = scenarios.class_splits(train.n_classes, tasks, seed), None
    return scenarios.split_by_classes(train, test, parts, scenario, names)


def embed(data, encoder):
    from fewshot.data.tensors import LabeledTensors

    z = encoder.encode_batched(data.data, progress=sys.stderr.isatty())
    return LabeledTensors(z, data.labels, data.class_names, dict(data.info), data.class_groups)


def run_ours(stream, strategy: str, seed: int, args, encoder=None) -> dict:
    import torch

    from fewshot.continual.base import TrainSettings
    from fewshot.continual.trainer import ContinualRun, train_continual
    from fewshot.encoders.base import IdentityEncoder
    from fewshot.encoders.conv4 import Conv4
    from fewshot.workflows.continual import build_strategy

    strategy, options = VARIANTS.get(strategy, (strategy, {}))
    if strategy in ("replay", "gdumb"):
        options = {**options, "memory": args.memory}
    if strategy == "replay":
        options = {**options, **replay_options(args.replay_options)}
    torch.manual_seed(seed)
    if encoder is None:
        encoder = Conv4(in_channels=1, hidden=64, image_size=28)
    else:
        encoder = IdentityEncoder(int(stream.experiences[0].train.data.shape[-1]))
    settings = TrainSettings(args.epochs, args.lr, args.batch_size, "sgd", "cpu", args.precision)
    started = time.perf_counter()
    task = ContinualRun(stream, build_strategy(strategy, options), encoder, settings, seed)
    report = train_continual(task, None, {}, progress=False)
    report["wall_seconds"] = time.perf_counter() - started
    return report


def replay_options(text: str) -> dict:
    """``"augment=shift-flip,distill=0.3"`` -> ``{"augment": "shift-flip", "distill": 0.3}``, each
    value read as the type `Replay`'s constructor declares (as `--method-option` values are)."""
    from fewshot.continual.replay import Replay
    from fewshot.workflows.compare_options import coerce, constructor_hints

    hints = constructor_hints(Replay)
    out = {}
    for pair in filter(None, text.split(",")):
        key, value = pair.split("=")
        key = key.replace("-", "_")
        out[key] = coerce(value, hints[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="fashion-mnist,omniglot")
    parser.add_argument("--scenarios", default="class-il,task-il")
    parser.add_argument("--strategies", default=",".join(TRAINED + FROZEN))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=1000, help="Fashion-MNIST training items per class.")
    parser.add_argument("--test-per-class", type=int, default=500)
    parser.add_argument("--alphabets", type=int, default=5, help="Omniglot: experiences (first alphabets).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--memory", type=int, default=200)
    parser.add_argument(
        "--replay-options",
        default="",
        help="Options for the replay rows, e.g. augment=shift-flip,distill=0.3,rebalance=30,replay_ratio=2.",
    )
    parser.add_argument("--frozen-encoder", default="efficientnet-lite0")
    parser.add_argument(
        "--frozen-image-size",
        type=int,
        default=None,
        help="Side the frozen encoder reads (default: its own, 224).",
    )
    parser.add_argument("--avalanche", action="store_true", help="Also run Avalanche 0.6.0 (its own venv).")
    parser.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16"], help="fewshot's training precision."
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/continual.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    info = machine()
    print(machine_line(info), flush=True)
    results, rows = [], []

    def save(rec: dict) -> None:  # after every strategy: a stopped run keeps what it measured
        results.append(rec)
        write_json(args.out, {"machine": info, "settings": vars(args), "results": results})

    for dataset in args.datasets.split(","):
        run_dataset(dataset, args, save)
    for r in results:
        rows.append(table_row(r, args.avalanche))
    headers = ["data", "scenario", "strategy", "seeds", "avg acc", "±95%", "forgetting", "±95%", "s/exp"]
    if args.avalanche:
        headers += ["Avalanche acc", "±95%", "Avalanche s/exp", "time ratio"]
    print(markdown_table(headers, rows))  # the JSON is complete: `save` wrote it after each strategy


def run_dataset(dataset: str, args, save) -> None:
    from fewshot.build import build_encoder

    train, test, whole = load(dataset, args.per_class, args.test_per_class, args.alphabets)
    strategies = args.strategies.split(",")
    embedded = None
    if any(s in FROZEN for s in strategies):
        options = {"image_size": args.frozen_image_size}
        encoder = build_encoder(args.frozen_encoder, "cpu", options=options).encoder.eval()
        embedded = (embed(train, encoder), embed(test, encoder), whole)
    for scenario in args.scenarios.split(","):
        for strategy in strategies:
            if strategy == "multihead" and scenario != "task-il":
                continue
            runs, theirs = [], []
            for seed in map(int, args.seeds.split(",")):
                source = embedded if strategy in FROZEN else (train, test, whole)
                stream = stream_for(*source, scenario, seed, args.tasks)
                report = run_ours(stream, strategy, seed, args, encoder=True if strategy in FROZEN else None)
                runs.append(report)
                if args.avalanche and strategy in AVALANCHE:
                    from bench_continual_avalanche import run_avalanche

                    theirs.append(run_avalanche(stream, strategy, seed, args))
                    print(f"  Avalanche: {json.dumps(theirs[-1], default=str)[:200]}", flush=True)
                print(f"{dataset} {scenario} {strategy} seed {seed}: {summary(report)}", flush=True)
            save(record(dataset, scenario, strategy, runs, theirs))


def summary(report: dict) -> str:
    m = report["metrics"]
    acc, forgetting = m["average_accuracy"], m["average_forgetting"]
    return f"avg acc {acc:.4f}, forgetting {forgetting:.4f}, {report['wall_seconds']:.0f} s"


def record(dataset, scenario, strategy, runs, theirs) -> dict:
    accs = [r["metrics"]["average_accuracy"] for r in runs]
    forgets = [r["metrics"]["average_forgetting"] for r in runs]
    per_exp = [r["wall_seconds"] / len(r["accuracy_matrix"]) for r in runs]
    rec = {
        "dataset": dataset, "scenario": scenario, "strategy": strategy,
        "average_accuracy": accs, "average_forgetting": forgets, "seconds_per_experience": per_exp,
        "accuracy_matrices": [r["accuracy_matrix"] for r in runs],
        "precision": [r["precision"] for r in runs], "channels_last": [r["channels_last"] for r in runs],
    }  # fmt: skip
    if theirs:
        rec["avalanche"] = theirs
    return rec


def table_row(r: dict, avalanche: bool) -> list:
    row = [
        r["dataset"], r["scenario"], r["strategy"], len(r["average_accuracy"]),
        round(float(np.mean(r["average_accuracy"])), 4), round(ci95(r["average_accuracy"]), 4),
        round(float(np.mean(r["average_forgetting"])), 4), round(ci95(r["average_forgetting"]), 4),
        round(float(np.mean(r["seconds_per_experience"])), 1),
    ]  # fmt: skip
    if "avalanche" in r:
        acc = [a["average_accuracy"] for a in r["avalanche"]]
        secs = float(np.mean([a["seconds_per_experience"] for a in r["avalanche"]]))
        ours = float(np.mean(r["seconds_per_experience"]))
        row += [round(float(np.mean(acc)), 4), round(ci95(acc), 4), round(secs, 1), round(secs / ours, 2)]
    elif avalanche:
        row += ["-"] * 4
    return row


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
