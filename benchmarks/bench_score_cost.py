"""What a transferability score costs (issue #18): every score on 10,000 images x 1,280
EfficientNet-Lite0 features, against the fine-tuning it replaces.

Features: EfficientNet-Lite0 (ImageNet weights) of the first ``--items`` Fashion-MNIST training
images, with the ImageNet head's class probabilities for LEEP and NCE. They come from
`bench_index_real.py`'s cache (``index-real-fashion-None-<side>.npy``: all 70,000) when it
exists, else they are computed here at ``--image-size`` px. Each score runs ``--repeats``
times; the table gives the median seconds.

The fine-tuning it replaces: `fewshot.transfer.finetune` (full, batch 32) of EfficientNet-Lite0
on ``--finetune-items`` of the same images at ``--finetune-size`` px for one epoch, timed here,
then scaled to ``--items`` images x ``--epochs`` epochs (a linear extrapolation, said so in the
table). One candidate's fine-tuning against one candidate's scores.

    FEWSHOT_DATA_DIR=/work/shared/data python benchmarks/bench_score_cost.py \\
        --out benchmarks/score-cost.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

BENCH_DIR = Path(os.environ.get("FEWSHOT_BENCH_DIR", Path.home() / ".cache" / "fewshot" / "bench"))


def lite0_features(args, data):
    """``(features (n, 1280) float32, ImageNet probabilities (n, 1000))`` of ``data``'s first
    ``--items`` images, and where the features came from."""
    import torch

    from fewshot.build import build_encoder
    from fewshot.transfer.candidates import features_and_source, source_probabilities

    caches = sorted(BENCH_DIR.glob("index-real-fashion-None-*.npy"))  # every image, any side
    source = build_encoder("efficientnet-lite0", "cpu", {"image_size": args.image_size}, seed=0)
    if caches:  # train images come first in the official split's 'all'
        cache = caches[0]
        z = torch.from_numpy(np.load(cache, mmap_mode="r")[: args.items].copy())
        return z.numpy(), source_probabilities(source.encoder, z), f"cached features ({cache.name})"
    items = data.data[: args.items]
    z, probs = features_and_source(source.encoder, items, progress=True)
    return z, probs, f"computed here at {args.image_size} px"


def finetune_seconds(args, data) -> tuple[float, int]:
    """Seconds of one full fine-tuning epoch of Lite0 on ``--finetune-items`` images."""
    import torch

    from fewshot.build import build_encoder
    from fewshot.transfer.finetune import FinetuneConfig, finetune

    source = build_encoder("efficientnet-lite0", "cpu", {"image_size": args.finetune_size}, seed=0)
    n = args.finetune_items
    config = FinetuneConfig(strategy="full", epochs=1, batch_size=32, seed=0)
    torch.manual_seed(0)
    started = time.perf_counter()  # 80% trained, 20% validated, as `fewshot finetune` does
    finetune(source.encoder, common.subset(data, np.arange(n)), config, progress=False)
    return time.perf_counter() - started, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--image-size", type=int, default=224, help="when the features are not cached")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--finetune-items", type=int, default=320)
    p.add_argument("--finetune-size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=5, help="epochs of the fine-tuning replaced")
    p.add_argument("--data-dir", default=os.environ.get("FEWSHOT_DATA_DIR"))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from fewshot.build import load_data
    from fewshot.transfer.scores import get_score, score_names

    data = load_data("fashion-mnist", "all", "official", args.data_dir)
    features, probs, origin = lite0_features(args, data)
    labels = data.labels[: args.items].numpy()
    rows = []
    for name in score_names():
        score = get_score(name)
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            value = score(features, labels, probs)
            seconds.append(time.perf_counter() - started)
        rows.append([name, round(statistics.median(seconds), 3), round(value, 4)])
        print(f"{name}: {rows[-1][1]} s (score {value:.4f})", flush=True)
    tune, n = finetune_seconds(args, data)
    scaled = tune / n * args.items * args.epochs
    rows.append(
        [f"fine-tuning, measured: 1 epoch on {n} images at {args.finetune_size} px", round(tune, 1), "-"]
    )
    rows.append(
        [f"fine-tuning, extrapolated: {args.items} images x {args.epochs} epochs", round(scaled), "-"]
    )
    header = ["what", "seconds", "score"]
    print(f"{args.items} x {features.shape[1]} features, {origin}; {common.machine_line(common.machine())}")
    print(common.markdown_table(header, rows))
    if args.out:
        common.write_table(args.out, args, header, rows)


if __name__ == "__main__":
    main()
