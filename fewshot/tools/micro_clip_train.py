"""Micro CLIP: a tiny CLIP trained on synthetic coloured shapes, shipped for offline use and tests.

The training script behind ``python -m fewshot.zeroshot.micro_clip`` (the documented entry
point, which forwards here). Images are coloured shapes ("a red circle") on grey backgrounds
(`fewshot.tools.shapes`); captions are the class name in a random prompt template. The
architecture is ``fewshot/models/micro-clip.json`` (an ordinary open_clip model config); weights
are ``fewshot/models/micro-clip.safetensors`` (fp16, < 2 MB).

Train a micro CLIP (about a minute on a CPU; writes ``./micro-clip.safetensors``, or
``--out FILE``; ``--overwrite-shipped`` regenerates the shipped weights in the package)::

    python -m fewshot.zeroshot.micro_clip train

Make a folder of synthetic images to try ``fewshot label`` / ``fewshot index`` offline::

    python -m fewshot.zeroshot.micro_clip make-folder shapes/ --per-class 20
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fewshot.tools.shapes import CLASS_NAMES, make_folder, synthetic_batch

DEFAULT_OUT = Path("micro-clip.safetensors")


def _check_train_options(steps: int, groups: int, pool_per_class: int, lr: float, seed: int, log_every: int):
    from fewshot.errors import FewshotError

    for name, value, low in (
        ("--steps", steps, 2),  # the one-cycle schedule needs a warm-up and a decay step
        ("groups", groups, 1),
        ("pool_per_class", pool_per_class, 1),
        ("--seed", seed, 0),
        ("log_every", log_every, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise FewshotError(f"{name} must be a whole number of at least {low}, got {value!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise FewshotError(f"lr must be a positive number, got {lr!r}")


def _optimiser(model: torch.nn.Module, lr: float, steps: int):
    """AdamW and its one-cycle schedule, as open_clip trains."""
    # no weight decay on gains, biases, embeddings' scale and the temperature
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    # 10% warm-up (60 of the shipped run's 600 steps); at least 1.5 steps, so short runs work too
    warmup = max(0.1, 1.5 / steps)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=warmup)
    return optimiser, schedule


def _clip_loss(model, tokenizer, x: torch.Tensor, captions: list[str], groups: int, n_classes: int):
    """The symmetric CLIP loss within each group: ``(loss, logits, labels)``."""
    image_z = F.normalize(model.encode_image(x), dim=-1).view(groups, n_classes, -1)
    text_z = F.normalize(model.encode_text(tokenizer(captions)), dim=-1).view(groups, n_classes, -1)
    logits = model.logit_scale.exp().clamp(max=100) * image_z @ text_z.transpose(1, 2)
    labels = torch.arange(n_classes).expand(groups, -1).reshape(-1)
    loss = (
        F.cross_entropy(logits.reshape(-1, n_classes), labels)
        + F.cross_entropy(logits.transpose(1, 2).reshape(-1, n_classes), labels)
    ) / 2
    return loss, logits, labels


def _save_fp16(model: torch.nn.Module, out: Path) -> None:
    from safetensors.torch import save

    from fewshot.fileio import atomic_write_bytes

    tensors = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    atomic_write_bytes(out, save(tensors))


def _micro_clip():
    """A fresh micro CLIP: ``(model, tokenizer, preprocess)``."""
    import open_clip

    from fewshot.encoders.clip import MICRO_CLIP, register_model_configs

    register_model_configs()
    model, _, preprocess = open_clip.create_model_and_transforms(MICRO_CLIP, pretrained=None)
    return model, open_clip.get_tokenizer(MICRO_CLIP), preprocess


def _step_batch(
    pool_x: torch.Tensor,
    by_class: torch.Tensor,
    groups: int,
    rng: np.random.Generator,
    templates: list[str],
    targets: torch.Tensor,
) -> tuple[torch.Tensor, list[str]]:
    """One step's images, ``groups`` groups of one per class (randomly flipped), and captions."""
    from fewshot.zeroshot.templates import fill

    pick = by_class[:, torch.randint(by_class.shape[1], (groups,))].T.reshape(-1)  # group-major
    x = pool_x[pick]
    x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x, x.flip(-1))  # flips keep the caption true
    captions = [fill(templates[int(rng.integers(len(templates)))], CLASS_NAMES[int(y)]) for y in targets]
    return x, captions


def _update(model: torch.nn.Module, optimiser, schedule, loss: torch.Tensor) -> None:
    """One optimiser and schedule step on `loss`; the logit scale stays at most 100."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    schedule.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))


def train(
    out: str | Path = DEFAULT_OUT,
    steps: int = 600,
    groups: int = 8,
    pool_per_class: int = 200,
    lr: float = 2e-3,
    seed: int = 0,
    log_every: int = 100,
) -> Path:
    """Train the micro CLIP with the symmetric CLIP loss and write fp16 safetensors weights.

    Each step takes `groups` groups of one image per class with its caption (so captions in a
    group are distinct, as the contrastive loss assumes); every caption is its class name in a
    random template (the 80 ImageNet ones plus plain forms), so any template set works later.
    """
    from fewshot.runs import check_output_file
    from fewshot.zeroshot.templates import load_templates

    _check_train_options(steps, groups, pool_per_class, lr, seed, log_every)
    out = check_output_file(out, "--out")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, tokenizer, preprocess = _micro_clip()
    templates = load_templates("imagenet") + ["{}", "a {}", "a photo of a {}.", "a {} shape"]
    start = time.perf_counter()
    pool_x, pool_y = synthetic_batch(rng, pool_per_class, preprocess)
    print(f"generated {len(pool_y)} training images in {time.perf_counter() - start:.1f} s")
    n_classes = len(CLASS_NAMES)
    by_class = pool_y.argsort().view(n_classes, pool_per_class)
    optimiser, schedule = _optimiser(model, lr, steps)
    targets = torch.arange(n_classes).repeat(groups)
    model.train()
    for step in range(1, steps + 1):
        x, captions = _step_batch(pool_x, by_class, groups, rng, templates, targets)
        loss, logits, labels = _clip_loss(model, tokenizer, x, captions, groups, n_classes)
        _update(model, optimiser, schedule, loss)
        if step % log_every == 0 or step == steps:
            accuracy = (logits.argmax(-1).reshape(-1) == labels).float().mean()
            print(f"step {step}/{steps}  loss {loss.item():.3f}  batch acc {accuracy:.3f}")
    _save_fp16(model, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - start:.0f} s")
    return out


@torch.no_grad()
def zero_shot_accuracy(
    encoder, per_class: int = 20, seed: int = 12345, templates: str = "simple"
) -> tuple[float, int]:
    """Zero-shot accuracy of `encoder` on fresh synthetic images: ``(accuracy, n_classes)``."""
    from fewshot.zeroshot.classifier import ZeroShotClassifier

    x, y = synthetic_batch(np.random.default_rng(seed), per_class, encoder.preprocess)
    classifier = ZeroShotClassifier(encoder, CLASS_NAMES, templates).fit()
    predictions = classifier.predict(x).cpu()
    return float((predictions == y).float().mean()), len(CLASS_NAMES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fewshot.zeroshot.micro_clip", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train and write the micro CLIP weights")
    p_train.add_argument(
        "--out", type=Path, default=None, help=f"weights file to write (default: ./{DEFAULT_OUT})"
    )
    p_train.add_argument(
        "--overwrite-shipped",
        action="store_true",
        help="write the shipped weights inside the package (what fewshot uses by default)",
    )
    p_train.add_argument("--steps", type=_at_least(2), default=600, help="optimiser steps (>= 2)")
    p_train.add_argument("--seed", type=_at_least(0), default=0)
    p_folder = sub.add_parser("make-folder", help="write a folder of synthetic coloured-shape images")
    p_folder.add_argument("dest", type=Path)
    p_folder.add_argument("--per-class", type=_at_least(1), default=20)
    p_folder.add_argument("--seed", type=_at_least(0), default=0)
    p_folder.add_argument("--size", type=_at_least(16), default=64)
    p_folder.add_argument("--ext", default="jpg", choices=["jpg", "png"])
    args = parser.parse_args(argv)
    from fewshot.errors import FewshotError

    try:
        _run(parser, args)
    except FewshotError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")


def _at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command == "train":
        from fewshot.encoders.clip import micro_clip_files

        if args.overwrite_shipped and args.out is not None:
            parser.error("give --out or --overwrite-shipped, not both")
        out = micro_clip_files()[1] if args.overwrite_shipped else args.out or DEFAULT_OUT
        out = train(out, steps=args.steps, seed=args.seed)
        from fewshot.encoders.clip import ClipEncoder

        accuracy, n = zero_shot_accuracy(ClipEncoder("micro-clip", pretrained=str(out), device="cpu"))
        print(f"zero-shot accuracy on held-out images: {accuracy:.3f} ({n} classes, chance {1 / n:.3f})")
    else:
        dest = make_folder(args.dest, args.per_class, args.seed, args.size, args.ext)
        print(
            f"wrote {args.per_class * len(CLASS_NAMES)} images in {len(CLASS_NAMES)} "
            f"class folders under {dest}"
        )
        print(f"classes: {','.join(CLASS_NAMES)}")


if __name__ == "__main__":
    main()
