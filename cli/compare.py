"""`fewshot compare`: several methods on the same episodes, shot by shot; a table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import Command, DataDir, Dataset, Device, Progress, Seed, Split, Ways
from fewshot_cli.episode_options import Rotations, SkipSmallGroups, VariableEpisodes, WithinGroup


def _int_list(text: str | None, what: str) -> list[int] | None:
    from fewshot.errors import FewshotError

    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FewshotError(f"{what} must be whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise FewshotError(f"{what} must be positive whole numbers, got {text!r}")
    return sorted(set(values))


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [m.strip() for m in text.split(",") if m.strip()]


Methods = Annotated[
    str | None,
    typer.Option(
        "--methods",
        "-m",
        help="Comma-separated methods (default: every learner that runs on a frozen encoder; "
        "those that need class names with CLIP only).",
    ),
]
MethodOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--method-option",
        help="One method's hyperparameter, NAME.KEY=VALUE (e.g. coop.epochs=20, "
        "clip-lora.iterations_per_shot=50); repeatable.",
    ),
]
ShotList = Annotated[
    str | None,
    typer.Option(
        "--shots",
        "-k",
        help="Shots to compare, comma-separated (default: 1,2,4,8,16; with --episode-file: the files').",
    ),
]
CompareQueries = Annotated[
    int | None,
    typer.Option(
        "--queries", "-q", min=1, help="Queries per class (default: up to 15, as many as every class allows)."
    ),
]
CompareEpisodes = Annotated[int, typer.Option("--episodes", min=1, help="Episodes per number of shots.")]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="A fewshot checkpoint, 'clip', or an encoder name. Default: the shipped Omniglot ProtoNet.",
    ),
]
Model = Annotated[
    str | None, typer.Option("--model", help="CLIP architecture (with --encoder clip; default ViT-B-32).")
]
Pretrained = Annotated[
    str | None, typer.Option("--pretrained", help="CLIP weights tag or file [default: default].")
]
Subset = Annotated[
    str | None, typer.Option("--subset", help="Part of the split (default: Omniglot test, folders all).")
]
EpisodeFiles = Annotated[
    list[Path] | None,
    typer.Option("--episode-file", help="Use these episodes (one file per number of shots; repeatable)."),
]
SaveEpisodes = Annotated[
    Path | None, typer.Option("--save-episodes", help="Keep the episode files in this folder.")
]
Checkpoints = Annotated[
    list[str] | None,
    typer.Option(
        "--checkpoint",
        help="A meta-trained model in the table, [LABEL=]PATH (Relation, FEAT, MAML, Reptile...: "
        "its own learner, on the same episodes, images prepared as it was trained); repeatable.",
    ),
]
Plot = Annotated[Path | None, typer.Option("--plot", help="Write accuracy vs shots to this PNG.")]
RowsJson = Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")]


def compare_command(
    ctx: typer.Context,
    methods: Methods = None,
    method_option: MethodOptions = None,
    shots: ShotList = None,
    ways: Ways = 5,
    queries: CompareQueries = None,
    episodes: CompareEpisodes = 200,
    encoder: Encoder = None,
    checkpoint: Checkpoints = None,
    clip_model: Model = None,
    pretrained: Pretrained = None,
    dataset: Dataset = "omniglot",
    split: Split = None,
    subset: Subset = None,
    episode_file: EpisodeFiles = None,
    save_episodes: SaveEpisodes = None,
    plot: Plot = None,
    as_json: RowsJson = False,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    rotations: Rotations = None,
    within_group: WithinGroup = False,
    skip_small_groups: SkipSmallGroups = False,
    variable_episodes: VariableEpisodes = False,
    progress: Progress = None,
) -> None:
    """Compare few-shot methods on the same episodes at several shots: table (+ PNG plot with 95% CIs)."""
    from fewshot.transfer.compare import format_table
    from fewshot.workflows.compare import CompareRequest, run_compare
    from fewshot.workflows.compare_options import parse_method_options

    settings = {k: v for k, v in ctx.params.items() if k not in ("as_json", "method_option", "checkpoint")}
    settings["checkpoints"] = checkpoint
    settings.update(shots=_int_list(shots, "--shots"), methods=_names(methods), episode_file=episode_file)
    settings["method_options"] = parse_method_options(method_option)
    rows, title = run_compare(CompareRequest(**settings))
    if as_json:
        from fewshot.runs import json_safe

        typer.echo(json.dumps(json_safe([r.as_dict() for r in rows]), allow_nan=False))
        return
    typer.echo(f"{title}, {rows[0].n_episodes} episodes per column (accuracy % +- 95% CI)")
    typer.echo(format_table(rows))
    if save_episodes:
        typer.echo(f"episode files: {save_episodes}")
    if plot is not None:
        typer.echo(f"plot: {plot}")


def register(app: typer.Typer) -> None:
    app.command("compare", cls=Command)(compare_command)
