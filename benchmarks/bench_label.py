"""Speed of `fewshot label` against the bare forward pass of the same open_clip model, in one run.

Writes a folder of synthetic JPEG files (coloured shapes on noisy backgrounds), then measures:

- bare: ``encoder.encode`` on batches of already-preprocessed tensors held in memory
  (same model, batch size, device and precision), images per second;
- label: the full `fewshot label` path (`label_images`: find files, decode in worker processes,
  preprocess, encode, score, write the CSV), images per second over the whole folder.

The machine is shared, so the two are interleaved: the folder is labelled in `--rounds` chunks
(one `label_images` call each, whose output rows are checked), and before each chunk the bare
pass is timed; rates are total images over total seconds for each side.

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
    parser.add_argument("--rounds", type=int, default=4, help="interleaved bare/label rounds")
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
        rounds = max(1, args.rounds)
        chunks = [paths[i::rounds] for i in range(rounds)]
        chunks = [sorted(c) for c in chunks]
        bare_images = bare_seconds = label_images_done = label_seconds = 0.0
        per_round = []
        for i, chunk in enumerate(chunks):
            rate = bare_forward(encoder, batch, args.bare_batches)
            bare_images += args.bare_batches * batch.shape[0]
            bare_seconds += args.bare_batches * batch.shape[0] / rate
            summary = label_images(
                chunk,
                classifier,
                Path(tmp) / f"labels-{i}.csv",
                batch_size=args.batch_size,
                workers=args.workers,
                progress=False,
            )
            assert summary.labelled == len(chunk), summary
            label_images_done += summary.labelled
            label_seconds += summary.seconds
            per_round.append({"bare": round(rate, 2), "label": summary.images_per_second})
            print(json.dumps(per_round[-1]), flush=True)
    bare = bare_images / bare_seconds
    label_rate = label_images_done / label_seconds
    result = {
        "model": args.model,
        "pretrained": args.pretrained,
        "device": str(encoder.device),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "images": int(label_images_done),
        "image_size": list(args.size),
        "batch_size": args.batch_size,
        "bare_forward_images_per_s": round(bare, 2),
        "per_round": per_round,
        "label_images_per_s": round(label_rate, 2),
        "ratio_label_over_bare": round(label_rate / bare, 3),
        "label_seconds": round(label_seconds, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
