"""Accuracy of the transfer-learning methods at 1 and 5 shots, every method on the same episodes.

Part 1: Omniglot (Vinyals test split), 5-way, 15 queries, with a Conv-4 checkpoint (default:
the shipped ProtoNet): protonet, simpleshot, linear-probe, finetune (head only) and
finetune with the last block trained.
Part 2: a CLIP encoder (default: the shipped micro CLIP; random weights when it is not shipped)
on a synthetic image folder made here: zeroshot, tip-adapter, tip-adapter-f, linear-probe,
simpleshot.
Part 3: `fewshot finetune` strategies on a labelled set: the first ``--ft-classes`` Omniglot
test classes, 16 images per class to train and 4 to validate.

    FEWSHOT_DATA_DIR=/work/shared/data python benchmarks/bench_transfer.py [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fewshot.checkpoints import load_learner
from fewshot.data.omniglot import load_omniglot
from fewshot.data.splits import subset_classes
from fewshot.learners import LEARNERS
from fewshot.transfer.compare import compare_methods, episode_files_for, format_table


def omniglot_part(checkpoint: str, episodes: int, seed: int) -> list[dict]:
    learner, meta = load_learner(checkpoint, "cpu")
    data = load_omniglot("vinyals", "test", image_size=meta.get("dataset", {}).get("image_size", 28))
    learners = {
        "protonet": learner,
        "simpleshot": LEARNERS.get("simpleshot")(learner.encoder),
        "linear-probe": LEARNERS.get("linear-probe")(learner.encoder),
        "finetune": LEARNERS.get("finetune")(learner.encoder),
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = episode_files_for(data.labels, [1, 5], 5, 15, episodes, seed, Path(tmp))
        rows = compare_methods(learners, data, files, "cpu")
        # Last block trained per episode: a copy of the encoder adapted on every support set (slow).
        slow = {"finetune+block": LEARNERS.get("finetune")(learner.encoder, train_last_block=True)}
        # The sampler draws episodes in seeded blocks: these are the first 100 of the same episodes.
        (Path(tmp) / "first").mkdir()
        few = episode_files_for(data.labels, [1, 5], 5, 15, min(100, episodes), seed, Path(tmp) / "first")
        rows += compare_methods(slow, data, few, "cpu")
    print(f"Omniglot vinyals test, Conv-4 from {checkpoint}")
    print(format_table(rows))
    return [r.as_dict() for r in rows]


def synthetic_folder(root: Path, n_classes: int = 10, per_class: int = 30, seed: int = 0) -> list[str]:
    """Coloured shapes: class = (colour, shape); 32x32 PNGs with jitter and noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    colours = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (230, 210, 30)}
    shapes = ["circle", "square", "triangle"]
    classes = [(c, s) for c in colours for s in shapes][:n_classes]
    names = []
    for colour, shape in classes:
        name = f"{colour} {shape}"
        names.append(name)
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.fromarray(rng.integers(0, 80, (32, 32, 3), dtype=np.uint8))
            draw = ImageDraw.Draw(image)
            x, y, r = rng.integers(10, 22), rng.integers(10, 22), rng.integers(6, 10)
            if shape == "circle":
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colours[colour])
            elif shape == "square":
                draw.rectangle([x - r, y - r, x + r, y + r], fill=colours[colour])
            else:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colours[colour])
            image.save(root / name / f"{i:03d}.png")
    return names


def clip_part(model: str, pretrained: str, episodes: int, seed: int) -> list[dict]:
    from fewshot.encoders import create_encoder
    from fewshot.transfer.sources import EncoderSource, load_for_encoder

    try:
        encoder = create_encoder("clip", model=model, pretrained=pretrained, device="cpu")
    except Exception as err:  # noqa: BLE001 - the shipped weights may not be there yet
        print(f"CLIP {model} ({pretrained}) unavailable ({err}); using random weights")
        encoder = create_encoder("clip", model=model, pretrained=None, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_folder(Path(tmp) / "shapes")
        source = EncoderSource(encoder, "clip", None, description=encoder.describe())
        data = load_for_encoder(source, str(Path(tmp) / "shapes"), "all")
        learners = {
            m: LEARNERS.get(m)(encoder)
            for m in ("zeroshot", "tip-adapter", "tip-adapter-f", "linear-probe", "simpleshot")
        }
        files = episode_files_for(data.labels, [1, 5], 5, 15, episodes, seed, Path(tmp))
        rows = compare_methods(learners, data, files, "cpu")
    print(f"CLIP {encoder.describe()} on a synthetic folder (10 classes x 30 images, 'colour shape')")
    print(format_table(rows))
    return [r.as_dict() for r in rows]


def strategies_part(checkpoint: str, n_classes: int, epochs: int) -> list[dict]:
    from fewshot.transfer.export import fit_frozen_classifier
    from fewshot.transfer.finetune import FinetuneConfig, accuracy, finetune, split_items

    data = load_omniglot("vinyals", "test")
    data = subset_classes(data, list(range(n_classes)), "ft")
    train, val = split_items(data, 0.2, 0)
    out = []
    for strategy in ("linear-probe", "simpleshot", "full", "partial", "gradual"):
        learner, _ = load_learner(checkpoint, "cpu")
        started = time.perf_counter()
        if strategy in ("linear-probe", "simpleshot"):
            model = fit_frozen_classifier(learner.encoder, train, strategy)
            acc, ran = accuracy(model, val, torch.device("cpu")), 0
        else:
            cfg = FinetuneConfig(
                strategy=strategy, freeze=2, epochs=epochs, unfreeze_every=2, device="cpu", patience=0
            )
            _, result = finetune(learner.encoder, train, cfg, val_data=val, progress=False)
            acc, ran = result.best_val_accuracy, result.epochs_done
        out.append(
            {
                "strategy": strategy,
                "val_accuracy": acc,
                "epochs": ran,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(f"{strategy:>13}: {100 * acc:.2f}% ({len(val)} held-out items, {n_classes} classes)")
    return out


def main() -> None:
    from fewshot.models import DEFAULT_CHECKPOINT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--clip-model", default="micro-clip")
    parser.add_argument("--pretrained", default="default")
    parser.add_argument("--ft-classes", type=int, default=100)
    parser.add_argument("--ft-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/transfer.json")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: omniglot,clip,strategies")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny per-episode problems; threads only contend on a shared CPU
    skip = set(args.skip.split(","))
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "args": vars(args)}
    if "omniglot" not in skip:
        results["omniglot"] = omniglot_part(args.checkpoint, args.episodes, args.seed)
    if "clip" not in skip:
        results["clip"] = clip_part(args.clip_model, args.pretrained, args.episodes, args.seed)
    if "strategies" not in skip:
        results["strategies"] = strategies_part(args.checkpoint, args.ft_classes, args.ft_epochs)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
