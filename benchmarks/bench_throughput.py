"""Throughput of the library against plain PyTorch on EfficientNet-Lite0 (issue #15, "Measured").

(a) Training: `fewshot.transfer.finetune.finetune` (what ``fewshot finetune --strategy full``
    runs) against a hand-written loop on the same model (EfficientNet-Lite0, bundled ImageNet
    weights, + a linear head on the 1280-d features), the same data tensors (``--steps`` x
    ``--batch-size`` Fashion-MNIST train images, 28 px grey, resized by the encoder's input
    layer), the same batch size, AdamW at the same rates, the same number of steps; no
    augmentation on either side (``--augment`` turns the library's on), every weight
    trainable. The library's time is the whole `finetune` call: run settings, the head's
    initialisation (off: ``head_init="random"``, as the hand loop), the epoch, and its
    validation pass on ``--val-items`` images.
(b) Embedding: `Encoder.encode_batched` (what ``fewshot eval``/``compare`` embed with; BatchNorm
    folded, channels-last) at ``--batch-size``, against a bare ``encoder(x)`` forward under
    ``torch.inference_mode()`` on the same batches; plus ``encode_batched`` with its default
    batch size (the CPU probe), as ``fewshot eval`` runs it when not told.

Rounds alternate library / plain (``--rounds``, the first ``--warmup`` not counted); images/s
is the median over rounds; ratio = library / plain (goal: at least 0.9). Output: a Markdown
table, ``--out`` JSON with every round.

Full run (the lead's, on a quiet machine):

    FEWSHOT_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/bench_throughput.py \
        --out benchmarks/throughput.json

Smoke run: ``--rounds 2 --warmup 0 --steps 2 --batch-size 8 --image-size 96 --embed-items 64``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import _common as common


def training_data(args):
    """``(encoder with ImageNet weights, train items, val items)``: Fashion-MNIST train images."""
    from fewshot.build import build_encoder, load_for_encoder

    source = build_encoder("efficientnet-lite0", "cpu", {"image_size": args.image_size}, seed=0)
    train = load_for_encoder(source, "fashion-mnist", "train", "official", args.data_dir, 0)
    fit = common.subset(train, range(args.steps * args.batch_size))
    val = common.subset(train, range(len(train) - args.val_items, len(train)))
    return source.encoder, fit, val


def library_round(encoder, fit, val, args) -> float:
    """Seconds of one `finetune` call: one epoch of ``steps`` batches (+ its validation)."""
    from fewshot.transfer.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        strategy="full",
        epochs=1,
        lr=args.lr,
        head_lr=args.head_lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        augment=args.augment,
        patience=0,
        head_init="random",
        device="cpu",
    )
    started = time.perf_counter()
    finetune(
        copy.deepcopy(encoder), fit, config, val_data=val, encoder_name="efficientnet-lite0", progress=False
    )
    return time.perf_counter() - started


def plain_round(encoder, fit, args) -> float:
    """Seconds of the hand-written loop: the same steps on a copy of the same network."""
    import torch
    import torch.nn.functional as F

    started = time.perf_counter()
    net = copy.deepcopy(encoder)
    head = torch.nn.Linear(net.embed_dim, len(fit.class_names))
    params = [{"params": net.parameters(), "lr": args.lr}, {"params": head.parameters(), "lr": args.head_lr}]
    optimizer = torch.optim.AdamW(params, weight_decay=args.weight_decay)
    net.train()
    order = torch.randperm(len(fit))
    for start in range(0, len(fit), args.batch_size):
        idx = order[start : start + args.batch_size]
        loss = F.cross_entropy(head(net(fit.data[idx])), fit.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def embed_rounds(encoder, items, args) -> dict[str, list[float]]:
    """Seconds per round of the three embedding paths (interleaved)."""
    import torch

    batches = [items[i : i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    encoder.eval()

    def bare() -> None:
        with torch.inference_mode():
            for batch in batches:
                encoder(batch)

    paths = {
        "encode_batched": lambda: encoder.encode_batched(items, args.batch_size),
        "bare forward": bare,
        "encode_batched (default batch)": lambda: encoder.encode_batched(items),
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def median_rate(seconds: list[float], images: int, warmup: int) -> float:
    return images / statistics.median(seconds[warmup:] or seconds)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="train,embed", help="train, embed or both")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="first rounds not counted")
    p.add_argument("--steps", type=int, default=20, help="training steps per round")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--embed-items", type=int, default=1024)
    p.add_argument("--val-items", type=int, default=10, help="the library's validation pass")
    p.add_argument("--augment", action="store_true", help="the library's augmentation on (plain: none)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--head-lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--image-size", type=int, default=None, help="input side (default: the model's 224)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None, help="default: FEWSHOT_DATA_DIR")
    p.add_argument("--out", default="benchmarks/throughput.json")
    args = p.parse_args(argv)
    args.parts = [s for s in args.parts.split(",") if s]
    if not set(args.parts) <= {"train", "embed"}:
        p.error("--parts: train, embed or train,embed")
    if min(args.rounds, args.steps, args.batch_size, args.embed_items, args.val_items) < 1:
        p.error("--rounds, --steps, --batch-size, --embed-items and --val-items must be at least 1")
    if not 0 <= args.warmup < args.rounds:
        p.error("--warmup must be below --rounds")
    return args


def main(argv=None) -> None:
    import torch

    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = common.machine()
    print(f"# Throughput: library against plain PyTorch\n\nmachine: {common.machine_line(info)}")
    encoder, fit, val = training_data(args)
    side = encoder.input_size[-1]
    rows, raw = [], {}
    if "train" in args.parts:
        lib, plain = [], []
        for _ in range(args.rounds):
            lib.append(library_round(encoder, fit, val, args))
            plain.append(plain_round(encoder, fit, args))
        a, b = median_rate(lib, len(fit), args.warmup), median_rate(plain, len(fit), args.warmup)
        rows.append(
            [
                "training",
                "fewshot finetune (finetune())",
                "hand-written loop",
                round(a, 2),
                round(b, 2),
                round(a / b, 3),
            ]
        )
        raw["train"] = {"library_s": lib, "plain_s": plain, "images_per_round": len(fit)}
    if "embed" in args.parts:
        items = fit.data[: args.embed_items] if len(fit) >= args.embed_items else _items(args)
        times = embed_rounds(encoder, items, args)
        rate = {k: median_rate(v, len(items), args.warmup) for k, v in times.items()}
        bare = rate["bare forward"]
        for name in ("encode_batched", "encode_batched (default batch)"):
            rows.append(
                [
                    "embedding",
                    name,
                    "bare forward (inference_mode)",
                    round(rate[name], 2),
                    round(bare, 2),
                    round(rate[name] / bare, 3),
                ]
            )
        raw["embed"] = {"seconds": times, "images_per_round": len(items)}
    headers = ["part", "library", "plain PyTorch", "library img/s", "plain img/s", "ratio"]
    counted = f"rounds {args.warmup + 1}..{args.rounds}"
    print(f"\nEfficientNet-Lite0 at {side} px, batch {args.batch_size}, median of {counted}\n")
    print(common.markdown_table(headers, rows))
    print("\ngoal: ratio at least 0.9")
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    results = {
        "settings": {**settings, "image_size": side},
        "machine": info,
        "rows": [dict(zip(headers, r, strict=True)) for r in rows],
        "rounds": raw,
    }
    common.write_json(args.out, results)
    print(f"wrote {args.out}")


def _items(args):
    """``--embed-items`` Fashion-MNIST train images (28 px grey) when the training set is smaller."""
    from fewshot.build import load_data

    data = load_data("fashion-mnist", "train", "official", args.data_dir, None, 0)
    return data.data[: args.embed_items]


if __name__ == "__main__":
    sys.exit(main())
