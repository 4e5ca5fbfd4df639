"""Speed of `fewshot label` against the bare forward pass of the same open_clip model, in one run.

Writes a folder of synthetic JPEG files (coloured shapes on noisy backgrounds), then measures:

- bare: ``encoder.encode`` on batches of already-preprocessed tensors held in memory
  (same model, batch size, device and precision), images per second;
- label: the full `fewshot label` path (`label_images`: find files, decode in worker processes,
  preprocess, encode, score, write the CSV), images per second over the whole folder.

The bare pass is timed before and after the labelling run and averaged (the machine is shared).

    python benchmarks/bench_label.py --model ViT-B-32 --pretrained none --images 2000
    python benchmarks/bench_label.py --model micro-clip --images 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_jpegs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    from PIL import Image

    from fewshot.zeroshot.micro_clip import CLASS_NAMES, draw_shape

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        colour, shape = CLASS_NAMES[i % len(CLASS_NAMES)].split()
        image = draw_shape(rng, colour, shape, min(size)).resize(size, Image.BILINEAR)
        sub = folder / f"{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:06d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


@torch.inference_mode()
def bare_forward(encoder, batch: torch.Tensor, batches: int) -> float:
    """Images per second of ``encoder.encode`` on an in-memory preprocessed batch."""
    encoder.encode(batch)  # warm-up
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(batches):
        encoder.encode(batch)
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
    return batches * batch.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="none", help="speed does not depend on the weights")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), help="JPEG width height")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--bare-batches", type=int, default=4, help="batches per bare-forward timing")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from fewshot.data.images import read_image
    from fewshot.encoders.clip import ClipEncoder
    from fewshot.zeroshot.classifier import ZeroShotClassifier
    from fewshot.zeroshot.labelling import label_images
    from fewshot.zeroshot.micro_clip import CLASS_NAMES

    encoder = ClipEncoder(args.model, pretrained=args.pretrained, device=args.device)
    classifier = ZeroShotClassifier(encoder, CLASS_NAMES, "simple").fit()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        start = time.perf_counter()
        paths = write_jpegs(folder, args.images, tuple(args.size))
        seconds = time.perf_counter() - start
        print(f"wrote {len(paths)} JPEGs {args.size[0]}x{args.size[1]} in {seconds:.0f} s")
        batch = torch.stack([encoder.preprocess(read_image(p)) for p in paths[: args.batch_size]])
        batch = batch.to(encoder.device)
        bare_before = bare_forward(encoder, batch, args.bare_batches)
        summary = label_images(
            folder,
            classifier,
            Path(tmp) / "labels.csv",
            batch_size=args.batch_size,
            workers=args.workers,
            progress=False,
        )
        bare_after = bare_forward(encoder, batch, args.bare_batches)
    bare = (bare_before + bare_after) / 2
    label_rate = summary.images_per_second
    result = {
        "model": args.model,
        "pretrained": args.pretrained,
        "device": str(encoder.device),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "images": summary.labelled,
        "image_size": list(args.size),
        "batch_size": args.batch_size,
        "bare_forward_images_per_s": round(bare, 2),
        "bare_before": round(bare_before, 2),
        "bare_after": round(bare_after, 2),
        "label_images_per_s": round(label_rate, 2),
        "ratio_label_over_bare": round(label_rate / bare, 3),
        "label_seconds": summary.seconds,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
