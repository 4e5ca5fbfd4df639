"""Options shared by several commands (``Annotated`` aliases) and small helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: $FEWSHOT_DATA_DIR, then ~/.cache/fewshot/data).",
    ),
]
Dataset = Annotated[
    str,
    typer.Option("--dataset", help="'omniglot' or a path to an image folder or embedding file."),
]
Split = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="Omniglot: vinyals | lake | random. Image folder: train,val,test class ratios.",
    ),
]
Ways = Annotated[int, typer.Option("--ways", "-n", help="Classes per episode (N).")]
Shots = Annotated[int, typer.Option("--shots", "-k", help="Support images per class (K).")]
Queries = Annotated[int, typer.Option("--queries", "-q", help="Query images per class.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same episodes.")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps.")]
ImageSize = Annotated[
    int | None, typer.Option("--image-size", help="Resize images to this side (Omniglot: 28).")
]


def method_names() -> list[str]:
    from fewshot.learners import LEARNERS

    return LEARNERS.names()


def encoder_names() -> list[str]:
    from fewshot.encoders import ENCODERS

    return ENCODERS.names()


def check_choice(value: str, choices: list[str], what: str) -> str:
    from fewshot.errors import FewshotError

    if value not in choices:
        raise FewshotError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


ClipModel = Annotated[
    str,
    typer.Option(
        "--model",
        help="open_clip architecture (ViT-B-32, ViT-L-14, ...; 'micro-clip' works offline) "
        "or a path to an open_clip model-config JSON.",
    ),
]
ClipPretrained = Annotated[
    str,
    typer.Option(
        "--pretrained",
        help="open_clip tag (laion2b_s34b_b79k, openai, ...), a local weights file, 'default' "
        "(laion2b_s34b_b79k for ViT-B-32, the shipped weights for micro-clip) or 'none' (random).",
    ),
]
Precision = Annotated[
    str,
    typer.Option("--precision", help="auto (mixed bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16."),
]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
Workers = Annotated[
    int | None,
    typer.Option("--workers", help="Image-decoding processes (default: up to 8; 0 decodes in-process)."),
]


def clip_encoder(model: str, pretrained: str, device: str, precision: str):
    """The `ClipEncoder` the CLIP options describe (imports open_clip)."""
    from fewshot.encoders.clip import ClipEncoder

    return ClipEncoder(model=model, pretrained=pretrained, device=device, precision=precision)
