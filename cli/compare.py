"""`fewshot compare`: several methods on the same episodes, shot by shot; a table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import Command, DataDir, Device, Progress, Seed, Split, Ways

FEW_SHOT_METHODS = "protonet,simpleshot,linear-probe,finetune"
CLIP_METHODS = "zeroshot,tip-adapter,tip-adapter-f,linear-probe,simpleshot"


def _int_list(text: str, what: str) -> list[int]:
    from fewshot.errors import FewshotError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FewshotError(f"{what} must be whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise FewshotError(f"{what} must be positive whole numbers, got {text!r}")
    return sorted(set(values))


def compare_command(
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            "-m",
            help=f"Comma-separated methods (default: {FEW_SHOT_METHODS}; CLIP: {CLIP_METHODS}).",
        ),
    ] = None,
    shots: Annotated[
        str, typer.Option("--shots", "-k", help="Shots to compare, comma-separated.")
    ] = "1,2,4,8,16",
    ways: Ways = 5,
    queries: Annotated[
        int | None,
        typer.Option(
            "--queries",
            "-q",
            min=1,
            help="Queries per class (default: up to 15, as many as every class allows).",
        ),
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", min=1, help="Episodes per number of shots.")] = 200,
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            "-e",
            help="A fewshot checkpoint, 'clip', or an encoder name. Default: the shipped Omniglot ProtoNet.",
        ),
    ] = None,
    clip_model: Annotated[
        str | None, typer.Option("--model", help="CLIP architecture (with --encoder clip; default ViT-B-32).")
    ] = None,
    pretrained: Annotated[
        str | None, typer.Option("--pretrained", help="CLIP weights tag or file [default: default].")
    ] = None,
    dataset: Annotated[
        str, typer.Option("--dataset", help="'omniglot' or a folder with one subfolder per class.")
    ] = "omniglot",
    split: Split = None,
    subset: Annotated[
        str | None, typer.Option("--subset", help="Part of the split (default: Omniglot test, folders all).")
    ] = None,
    episode_file: Annotated[
        list[Path] | None,
        typer.Option("--episode-file", help="Use these episodes (one file per number of shots; repeatable)."),
    ] = None,
    save_episodes: Annotated[
        Path | None, typer.Option("--save-episodes", help="Keep the episode files in this folder.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write accuracy vs shots to this PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    progress: Progress = None,
) -> None:
    """Compare few-shot methods on the same episodes at several shots: table (+ PNG plot with 95% CIs)."""
    from fewshot_cli.evaluate import is_embedding_file

    from fewshot.device import resolve_device
    from fewshot.errors import FewshotError
    from fewshot.learners import LEARNERS
    from fewshot.seeding import seeded
    from fewshot.transfer.compare import (
        compare_methods,
        default_queries,
        episode_files_for,
        format_table,
        plot_rows,
        temporary_folder,
    )
    from fewshot.transfer.sources import embedding_source, load_for_encoder, resolve_encoder

    shot_list = _int_list(shots, "--shots")
    if plot is not None and plot.suffix.lower() != ".png":
        raise FewshotError(f"--plot must be a .png file, got {plot}")
    if plot is not None:  # fail before any work when matplotlib is missing
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise FewshotError("--plot needs matplotlib: pip install 'fewshot[plot]'") from None
    if save_episodes is not None and save_episodes.exists() and not save_episodes.is_dir():
        raise FewshotError(f"--save-episodes {save_episodes} is a file: give a folder for the episode files")
    if methods is not None:  # before any loading
        check_methods([m.strip() for m in methods.split(",") if m.strip()])
    torch_device = resolve_device(device)
    if subset is None:
        subset = "test" if dataset == "omniglot" else "all"
    if encoder in (None, "identity") and is_embedding_file(dataset):
        source, data = embedding_source(dataset, subset, split, seed)
    else:
        source = resolve_encoder(encoder, torch_device, clip_model, pretrained, seed=seed)
        data = load_for_encoder(source, dataset, subset, split, data_dir, seed)
    has_text = hasattr(source.encoder, "encode_text")
    names = [
        m.strip()
        for m in (methods or (CLIP_METHODS if has_text else FEW_SHOT_METHODS)).split(",")
        if m.strip()
    ]
    check_methods(names)
    if queries is None:
        queries = default_queries(data.labels, shot_list)
    learners = {}
    for name in names:
        if source.learner is not None and name == source.meta.get("learner"):
            learners[name] = source.learner
        else:
            with seeded(seed):
                learners[name] = LEARNERS.get(name)(source.encoder)
    with temporary_folder() as scratch:
        folder = Path(save_episodes) if save_episodes else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        files = episode_files_for(data.labels, shot_list, ways, queries, episodes, seed, folder, episode_file)
        rows = compare_methods(learners, data, files, torch_device, progress=progress)
    where = dataset if dataset == "omniglot" else Path(dataset).name
    title = f"{source.description} on {where} {subset}: {rows[0].ways}-way, {rows[0].queries} queries/class"
    if plot is not None:
        plot_rows(rows, plot, title)
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


def check_methods(names: list[str]) -> None:
    """Known methods that run on a frozen encoder (compare embeds the data once per encoder)."""
    from fewshot.errors import FewshotError
    from fewshot.learners import LEARNERS

    runs = [n for n in LEARNERS.names() if _frozen(LEARNERS.get(n))]
    for name in names:
        cls = LEARNERS.get(name)  # unknown names fail here, with the list of choices
        if not _frozen(cls):
            kind = "is a fixed-class model" if getattr(cls, "fixed_classes", False) else "adapts its encoder"
            raise FewshotError(
                f"--methods {name}: {name} {kind}, and compare runs frozen-encoder methods only "
                f"({', '.join(runs)}); evaluate it with `fewshot eval --method {name}`"
            )


def _frozen(cls) -> bool:
    return bool(getattr(cls, "frozen_encoder", False)) and not getattr(cls, "fixed_classes", False)


def register(app: typer.Typer) -> None:
    app.command("compare", cls=Command)(compare_command)
