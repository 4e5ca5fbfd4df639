"""Options shared by several commands (``Annotated`` aliases) and small helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (default: $FEWSHOT_DATA_DIR, then ~/.cache/fewshot/data).",
    ),
]


def dataset_names() -> list[str]:
    from fewshot.data.catalog import DATASETS

    return DATASETS.names()


Dataset = Annotated[
    str,
    typer.Option(
        "--dataset",
        help=f"A named data set ({', '.join(dataset_names())}) or a path to an image folder or an "
        "embedding file.",
    ),
]
Split = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="Omniglot: vinyals | lake | random; Fashion-MNIST: official | classes; image folder: "
        "train,val,test class ratios.",
    ),
]
# Numeric options are range-checked here, where they are declared: click refuses a bad value in
# one line that names the option ("Invalid value for '--shots': 0 is not in the range x>=1"),
# with exit code 2, before any work starts.
Ways = Annotated[int, typer.Option("--ways", "-n", min=2, help="Classes per episode (N).")]
Shots = Annotated[int, typer.Option("--shots", "-k", min=1, help="Support images per class (K).")]
Queries = Annotated[int, typer.Option("--queries", "-q", min=1, help="Query images per class.")]
Seed = Annotated[
    int,
    typer.Option(
        "--seed", min=0, help="Random seed (>= 0): the same seed gives the same episodes and weights."
    ),
]
Episodes = Annotated[int, typer.Option("--episodes", min=1, help="Number of episodes.")]
Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Progress bars (default: on when stderr is a terminal, off in logs and pipes).",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps.")]
ImageSize = Annotated[
    int | None,
    typer.Option("--image-size", min=16, help="Resize images to this side (Omniglot: 28; at least 16)."),
]


class Command(TyperCommand):
    """Every fewshot command: plain help and usage (``IMAGES...``, no ``<bool>`` after flags).

    Typer shows a ``<type>`` after every option, flags included, and ``{name}`` for required
    arguments in the usage line; a flag takes no value, and ``IMAGES...`` is the convention.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""  # shown in place of the type: nothing for a flag

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name).upper() + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


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
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", min=0, help="Image-decoding processes (default: up to 8; 0 decodes in-process)."
    ),
]


def request_settings(ctx: typer.Context, as_json: bool = False) -> dict[str, Any]:
    """The command's parameters as its request's fields (``--json`` is the CLI's own); with
    ``as_json``, no progress bar while JSON is printed."""
    settings = {k: v for k, v in ctx.params.items() if k != "as_json"}
    if as_json and "progress" in settings:
        settings["progress"] = False
    return settings


def json_line(report: dict) -> str:
    """Valid JSON always: a NaN or infinite number becomes null."""
    import json

    from fewshot.runs import json_safe

    return json.dumps(json_safe(report), allow_nan=False)


def echo_report(report: dict, as_json: bool, table: Callable[[dict], str]) -> None:
    """The report as one JSON object with ``--json``, else as ``table(report)``."""
    typer.echo(json_line(report) if as_json else table(report))
