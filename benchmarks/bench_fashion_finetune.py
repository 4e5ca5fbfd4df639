"""Fine-tuning EfficientNet-Lite0 on Fashion-MNIST with 10 and 100 labelled images per class
(issue #15, "Measured"): accuracy on the official test set, mean +- std over seeds, time per run.

Training items: a seeded class-stratified sample of ``size`` images per class from the official
``train`` part (seed = the run's seed). Model selection: the library's loop keeps the epoch of
best validation accuracy; with ``--val extra`` (default) that is measured on a second, disjoint
sample of the same size from ``train`` (every strategy trains on exactly ``size`` per class);
``--val holdout`` is what `fewshot finetune` does on a small folder (``val_fraction`` 0.2 of the
``size`` per class held out, so only 8 of 10 train). Test: the 10,000 official test images
(``--limit-test N``: a stratified subset, for quick checks).

Strategies (all EfficientNet-Lite0, 28 px grey -> RGB and resized to ``--image-size`` by the
encoder's own input layer, batch by batch):

- ``linear-probe``: frozen ImageNet features + logistic regression head
  (`fewshot.transfer.export.fit_frozen_classifier`, as ``fewshot finetune --strategy
  linear-probe``);
- ``partial``: the library's ``partial`` strategy, ``--freeze`` blocks frozen at the input side;
- ``gradual``: gradual unfreezing from the top, one block every ``--unfreeze-every`` epochs;
- ``full``: every weight trains, from the ImageNet weights;
- ``scratch``: ``full`` from random initialisation (``--pretrained none``), ``--scratch-lr``.

All training runs go through `fewshot.transfer.finetune.finetune` (AdamW, cosine schedule,
prototype-initialised head, light augmentation: shifts of up to 1/8 of the side, no flips),
``--epochs`` (default 20), ``--lr`` 1e-4 for the network and ``--head-lr`` 1e-3 (the library's
defaults for pretrained weights), ``--scratch-lr`` 1e-3 for the network from scratch, batch 32,
no early stopping. The library's blocks of a timm EfficientNet (`encoder_blocks`): stem conv,
stem BN, the 7 MBConv stages, head conv, head BN (11); ``partial`` with ``--freeze 7``
(default) trains the last two MBConv stages, the head conv + BN and the linear head;
``gradual`` unfreezes from the top with no floor (every block may end up training). The
pretrained strategies keep BatchNorm's ImageNet running statistics (``--freeze-batchnorm``,
default; ``scratch`` never): with 10 images per class, statistics re-estimated from batches
of 32 collapsed full fine-tuning's test accuracy (39% against 71%, 6 epochs, 500 test images).

Full run (the lead's; CPU-heavy: 5 strategies x 2 sizes x 3 seeds, each tested on 10,000
images at 224 px; the script prints an estimate after the first run):

    FEWSHOT_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_fashion_finetune.py \
        --out benchmarks/fashion-finetune.json --plot benchmarks/fashion-finetune.png

Smoke run: ``--sizes 10 --seeds 0 --epochs 1 --limit-test 200 --image-size 64``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import _common as common

STRATEGIES = ("linear-probe", "partial", "gradual", "full", "scratch")


def load_parts(args):
    """The encoder (ImageNet weights), the official train part and the (limited) test part."""
    from fewshot.build import build_encoder, load_for_encoder

    source = build_encoder("efficientnet-lite0", "cpu", {"image_size": args.image_size}, seed=0)
    train = load_for_encoder(source, "fashion-mnist", "train", "official", args.data_dir, 0)
    test = load_for_encoder(source, "fashion-mnist", "test", "official", args.data_dir, 0)
    return source, train, common.limit_test(test, args.limit_test, 0)


def samples(train, size: int, seed: int, val: str):
    """``(training items, validation items or None)`` for one run."""
    labels = train.labels.numpy()
    fit = common.per_class_sample(labels, size, seed)
    if val == "holdout":
        return common.subset(train, fit), None
    held = common.per_class_sample(labels, size, seed + 10_000, exclude=fit)
    return common.subset(train, fit), common.subset(train, held)


def encoder_for(strategy: str, pretrained, args):
    """A fresh copy of the pretrained encoder, or a randomly initialised one (seeded)."""
    if strategy != "scratch":
        return copy.deepcopy(pretrained)
    from fewshot.build import build_encoder

    return build_encoder(
        "efficientnet-lite0", "cpu", {"image_size": args.image_size, "pretrained": "none"}, seed=args.run_seed
    ).encoder


def train_one(strategy: str, encoder, fit, val, args):
    """One run: ``(model, epochs done, best epoch)``."""
    if strategy == "linear-probe":
        from fewshot.transfer.export import fit_frozen_classifier

        return fit_frozen_classifier(encoder.eval(), fit, "linear-probe", args.batch_size), 0, None
    from fewshot.transfer.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        strategy="full" if strategy == "scratch" else strategy,
        freeze=args.freeze if strategy == "partial" else 0,
        epochs=args.epochs,
        lr=args.scratch_lr if strategy == "scratch" else args.lr,
        head_lr=args.head_lr,
        batch_size=args.batch_size,
        patience=0,
        unfreeze_every=args.unfreeze_every,
        freeze_batchnorm=args.freeze_batchnorm and strategy != "scratch",
        seed=args.run_seed,
        device="cpu",
    )
    model, result = finetune(
        encoder, fit, config, val_data=val, encoder_name="efficientnet-lite0", progress=args.progress
    )
    return model, result.epochs_done, result.best_epoch + 1


def run_one(strategy, size, seed, pretrained, train, test, args) -> dict:
    import torch

    from fewshot.transfer.finetune import accuracy

    args.run_seed = seed
    torch.manual_seed(seed)
    fit, val = samples(train, size, seed, args.val)
    started = time.perf_counter()
    model, epochs, best = train_one(strategy, encoder_for(strategy, pretrained, args), fit, val, args)
    trained = time.perf_counter()
    acc = accuracy(model, test, torch.device("cpu"), batch_size=args.batch_size)
    done = time.perf_counter()
    return {
        "strategy": strategy,
        "per_class": size,
        "seed": seed,
        "train_items": len(fit),
        "val_items": 0 if val is None else len(val),
        "test_items": len(test),
        "test_accuracy": acc,
        "epochs": epochs,
        "best_epoch": best,
        "train_seconds": round(trained - started, 1),
        "test_seconds": round(done - trained, 1),
        "seconds": round(done - started, 1),
    }


def kind(strategy: str) -> str:
    return "frozen" if strategy == "linear-probe" else "trained"


def estimate(measured: dict[str, dict], plan: list[tuple[str, int, int]], args) -> float:
    """Seconds the whole plan should take, scaled from the first run of each kind (frozen
    features, training) measured so far: training time by items (x epochs for training;
    a training run's per-item cost x3 / epochs stands in for a frozen fit not measured yet),
    testing as measured."""

    def work(strategy: str, size: int) -> float:
        items = size * 10 * (1 if args.val == "extra" else 0.8)
        return items if kind(strategy) == "frozen" else 3 * items * args.epochs

    total = 0.0
    for strategy, size, _ in plan:
        r = measured.get(kind(strategy)) or next(iter(measured.values()))
        per_unit = r["train_seconds"] / max(1.0, work(r["strategy"], r["per_class"]))
        total += r["test_seconds"] + per_unit * work(strategy, size)
    return total


def summary(runs: list[dict]) -> list[list]:
    import numpy as np

    out = []
    for s in dict.fromkeys(r["strategy"] for r in runs):
        for k in dict.fromkeys(r["per_class"] for r in runs):
            mine = [r for r in runs if r["strategy"] == s and r["per_class"] == k]
            if not mine:
                continue
            acc = 100 * np.array([r["test_accuracy"] for r in mine])
            secs = np.array([r["seconds"] for r in mine])
            std = f"{acc.std(ddof=1):.2f}" if len(acc) > 1 else "n/a"
            out.append([s, k, len(mine), f"{acc.mean():.2f} +- {std}", round(float(secs.mean()), 1)])
    return out


def plot(runs: list[dict], path: str, title: str) -> None:
    plt = common.pyplot()
    if plt is None:
        return
    import numpy as np

    strategies = list(dict.fromkeys(r["strategy"] for r in runs))
    sizes = list(dict.fromkeys(r["per_class"] for r in runs))
    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=110)
    width = 0.8 / len(sizes)
    for j, k in enumerate(sizes):
        accs = [
            [100 * r["test_accuracy"] for r in runs if r["strategy"] == s and r["per_class"] == k]
            for s in strategies
        ]
        means = [np.mean(a) if a else np.nan for a in accs]
        stds = [np.std(a, ddof=1) if len(a) > 1 else 0.0 for a in accs]
        x = np.arange(len(strategies)) + (j - (len(sizes) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=3, label=f"{k} per class")
    ax.set_xticks(np.arange(len(strategies)))
    ax.set_xticklabels(strategies)
    ax.set_ylabel("test accuracy (%), mean +- std over seeds")
    ax.set_ylim(0, 100)
    ax.axhline(10, color="grey", lw=0.8, ls=":")  # chance
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    common.save_figure(fig, path)
    print(f"wrote {path}")


def finished_runs(path: str, settings: dict) -> list[dict]:
    """Runs already written to ``path`` by an interrupted benchmark with the same settings."""
    import json
    from pathlib import Path

    if not Path(path).is_file():
        return []
    previous = json.loads(Path(path).read_text())

    def same(a: dict) -> dict:  # what changes a run's result (not which runs, nor threads)
        return {k: v for k, v in a.items() if k not in ("sizes", "seeds", "strategies", "threads")}

    if same(previous.get("settings", {})) != same(json.loads(json.dumps(settings))):
        print(f"{path} holds other settings: starting over")
        return []
    return list(previous.get("runs", []))


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,100", help="labelled images per class, comma-separated")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help=f"from {','.join(STRATEGIES)}")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--scratch-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--freeze", type=int, default=7, help="partial: blocks frozen at the input side (of 11)")
    p.add_argument("--unfreeze-every", type=int, default=2)
    p.add_argument(
        "--freeze-batchnorm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pretrained strategies keep BatchNorm's ImageNet statistics (default: yes; scratch never)",
    )
    p.add_argument("--val", choices=("extra", "holdout"), default="extra")
    p.add_argument("--image-size", type=int, default=None, help="input side (default: the model's 224)")
    p.add_argument("--limit-test", type=int, default=None, help="a class-stratified subset of N test images")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None, help="default: FEWSHOT_DATA_DIR")
    p.add_argument("--out", default="benchmarks/fashion-finetune.json")
    p.add_argument("--plot", default="benchmarks/fashion-finetune.png")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(v) for v in args.sizes.split(",")]
        args.seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        p.error("--sizes and --seeds take comma-separated whole numbers")
    args.strategies = [s for s in args.strategies.split(",") if s]
    for s in args.strategies:
        if s not in STRATEGIES:
            p.error(f"--strategies {s}: choose from {', '.join(STRATEGIES)}")
    if min(args.sizes) < (1 if args.val == "extra" else 2) or args.epochs < 1:
        p.error("--sizes must be at least 1 (2 with --val holdout), --epochs at least 1")
    return args


def main(argv=None) -> None:
    import torch

    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = common.machine()
    print(f"# Fine-tuning EfficientNet-Lite0 on Fashion-MNIST\n\nmachine: {common.machine_line(info)}")
    source, train, test = load_parts(args)
    plan = [(s, k, seed) for k in args.sizes for s in args.strategies for seed in args.seeds]
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "plot", "progress", "run_seed")}
    settings["image_size"] = source.encoder.input_size[-1]
    title = f"EfficientNet-Lite0 on Fashion-MNIST, {len(test)} test images, {args.epochs} epochs"
    runs = finished_runs(args.out, settings)
    measured: dict[str, dict] = {}
    started = time.perf_counter()
    for i, (strategy, size, seed) in enumerate(plan):
        done = [r for r in runs if (r["strategy"], r["per_class"], r["seed"]) == (strategy, size, seed)]
        if done:
            print(f"[{i + 1}/{len(plan)}] {strategy:>12} {size:>4}/class seed {seed}: done before, kept")
            continue
        runs.append(run_one(strategy, size, seed, source.encoder, train, test, args))
        r = runs[-1]
        print(
            f"[{i + 1}/{len(plan)}] {strategy:>12} {size:>4}/class seed {seed}: "
            f"{100 * r['test_accuracy']:.2f}% ({r['test_items']} test), {r['seconds']} s"
        )
        # every finished run is on disk at once: a killed benchmark resumes where it stopped
        common.write_json(args.out, {"title": title, "settings": settings, "runs": runs, "partial": True})
        if kind(strategy) not in measured and len(plan) > 1:
            measured[kind(strategy)] = r
            guess = estimate(measured, plan, args) / 60
            print(f"estimated total: {guess:.0f} min (scaled from the first run of each kind so far)")
    runs = [r for key in plan for r in runs if (r["strategy"], r["per_class"], r["seed"]) == key]
    headers = ["strategy", "per class", "seeds", "test acc % (mean +- std)", "s/run"]
    print(f"\n## {title}\n\n{common.markdown_table(headers, summary(runs))}")
    total = time.perf_counter() - started
    print(f"\ntotal {total / 60:.1f} min (this invocation)")
    results = {
        "title": title,
        "settings": settings,
        "machine": info,
        "runs": runs,
        "seconds": round(total, 1),
    }
    common.write_json(args.out, results)
    print(f"wrote {args.out}")
    plot(runs, args.plot, title)


if __name__ == "__main__":
    sys.exit(main())
