"""Rank the available encoders on Fashion-MNIST, UCI digits and Omniglot (issue #18): every
transferability score, the fine-tuned accuracy, and Kendall's / weighted tau per score.

Candidates: EfficientNet-Lite0/1/2 (ImageNet weights), EfficientNet-Lite0 with random
weights (``random-init``), the shipped Omniglot ProtoNet Conv-4 and the shipped micro CLIP
(synthetic shapes). Each data set: a seeded class-stratified sample of ``--per-class`` items
of its fine-tuning part (Fashion-MNIST ``train``, digits ``train``, Omniglot's Vinyals test
classes, ``--omniglot-classes`` of them), 80% to score and train on, 20% held out for the
accuracy (`fewshot.workflows.rank_models`: the same items for every candidate). Fine-tuning:
``--strategy`` (default full), ``--epochs``, lr 1e-4 / head 1e-3, batch 32, BatchNorm
statistics kept (``--no-freeze-batchnorm``: trained), the last epoch's held-out accuracy. The
ImageNet encoders read ``--image-size`` px inputs (default 64, not 224: EfficientNet-Lite
embeds about 30 images/s at 224 px on the development CPU).

Goal: the best score's weighted tau >= 0.5 on every data set.

    FEWSHOT_DATA_DIR=/work/shared/data nice -n 10 .venv/bin/python benchmarks/bench_rank_models.py \\
        --out benchmarks/rank-models.json

Smoke: ``--datasets digits --per-class 10 --epochs 1``.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as common

CANDIDATES = {
    "efficientnet-lite0": "efficientnet-lite0",
    "efficientnet-lite1": "efficientnet-lite1",
    "efficientnet-lite2": "efficientnet-lite2",
    "random-init": "efficientnet-lite0[pretrained=none]",
    "omniglot-conv4": "protonet-conv4-omniglot",
    "micro-clip": "clip[model=micro-clip]",
}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="fashion-mnist,digits,omniglot")
    p.add_argument("--models", default=",".join(CANDIDATES), help=f"from {', '.join(CANDIDATES)}")
    p.add_argument("--per-class", type=int, default=30)
    p.add_argument("--omniglot-classes", type=int, default=20)
    p.add_argument("--strategy", default="full")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument(
        "--freeze-batchnorm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="BatchNorm keeps the pretrained statistics (few labels: see bench_fashion_finetune)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def run(dataset: str, args) -> dict:
    from fewshot.workflows.rank_models import RankRequest, rank_models

    names = args.models.split(",")
    request = RankRequest(
        data=dataset,
        models=",".join(CANDIDATES[n] for n in names),
        finetune=True,
        strategy=args.strategy,
        epochs=args.epochs,
        freeze_batchnorm=args.freeze_batchnorm,
        per_class=args.per_class,
        classes=args.omniglot_classes if dataset == "omniglot" else None,
        image_size=args.image_size,
        seed=args.seed,
        device="cpu",
        data_dir=args.data_dir,
        progress=False,
    )
    started = time.perf_counter()
    report = rank_models(request)
    report["seconds"] = round(time.perf_counter() - started, 1)
    for row, name in zip(report["models"], names, strict=True):
        row["name"] = name
    return report


def tables(report: dict) -> str:
    names = report["scores"]
    rows = [
        [r["name"], *(common_cell(r["scores"][n]) for n in names), f"{100 * r['accuracy']:.1f}"]
        for r in report["models"]
    ]
    out = common.markdown_table(["model", *names, "accuracy %"], rows)
    corr = [
        [n, common_cell(c["kendall_tau"]), common_cell(c["weighted_tau"]), c["models"]]
        for n, c in report["correlations"].items()
    ]
    return out + "\n\n" + common.markdown_table(["score", "Kendall tau", "weighted tau", "models"], corr)


def common_cell(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def goal(report: dict) -> tuple[str | None, float | None]:
    """The best score by weighted tau, and that tau."""
    taus = {n: c["weighted_tau"] for n, c in report["correlations"].items() if c["weighted_tau"] is not None}
    if not taus:
        return None, None
    best = max(taus, key=taus.get)
    return best, taus[best]


def cost_line(report: dict) -> str:
    score = sum(sum(r["score_seconds"].values()) for r in report["models"])
    embed = sum(r["embed_seconds"] for r in report["models"])
    tune = sum(r["finetune_seconds"] for r in report["models"])
    return f"all scores {score:.1f} s + embedding {embed:.1f} s, against fine-tuning {tune:.1f} s"


def main(argv=None) -> int:
    args = parse(argv)
    results = {"machine": common.machine(), "settings": vars(args), "datasets": {}}
    print(common.machine_line(results["machine"]))
    for dataset in args.datasets.split(","):
        report = run(dataset, args)
        results["datasets"][dataset] = report
        best, tau = goal(report)
        first = report["models"][0]
        sample = f"{first['train_items']} items scored, {first['test_items']} held out; {report['seconds']} s"
        print(f"\n## {dataset} ({sample})\n")
        print(tables(report))
        reached = "reached" if tau is not None and tau >= 0.5 else "NOT reached"
        print(f"\nbest score {best}: weighted tau {common_cell(tau)} -> goal (>= 0.5) {reached}")
        print(cost_line(report))
        if args.out:
            common.write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
