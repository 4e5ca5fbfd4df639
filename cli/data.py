"""`fewshot data`: download data sets and show what is found where."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, Command, DataDir, Progress

data_app = typer.Typer(help="Download data sets and show where they are.", no_args_is_help=True)

DATASETS = ("omniglot",)


@data_app.command("download", cls=Command)
def download_command(
    dataset: Annotated[str, typer.Argument(help="Data set to fetch: omniglot.")] = "omniglot",
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if files are present.")] = False,
    compact: Annotated[
        bool, typer.Option("--compact/--no-compact", help="Also convert the zips to fast-loading .npz.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the server.")
    ] = 10.0,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Fetch a data set into the data directory (verified, written atomically)."""
    from fewshot_cli.common import check_choice

    from fewshot.data.download import download_omniglot

    check_choice(dataset, list(DATASETS), "data set")
    log = (lambda message: None) if as_json else typer.echo
    root = download_omniglot(
        data_dir,
        force=force,
        compact=compact,
        progress=False if as_json else progress,
        timeout=timeout,
        log=log,
    )
    if as_json:
        typer.echo(json.dumps({"dataset": dataset, "folder": str(root), "ready": True}))
        return
    typer.echo(f"Omniglot is ready in {root}")


@data_app.command("info", cls=Command)
def info_command(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Show the data directory, where it comes from, and which Omniglot files it holds."""
    import os

    from fewshot.data.download import omniglot_status
    from fewshot.data.paths import ENV_VAR

    if data_dir is not None:
        origin = "--data-dir"
    elif os.environ.get(ENV_VAR):
        origin = f"${ENV_VAR}"
    else:
        origin = "default cache folder"
    root, rows = omniglot_status(data_dir)
    if as_json:
        document = {"data_dir": str(root.parent), "origin": origin, "omniglot": str(root)}
        typer.echo(json.dumps({**document, "items": dict(rows)}))
        return
    typer.echo(f"data directory: {root.parent} (from {origin})")
    typer.echo(f"omniglot: {root}")
    width = max(len(item) for item, _ in rows)
    for item, state in rows:
        typer.echo(f"  {item:<{width}}  {state}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
