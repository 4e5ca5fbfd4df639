"""`fewshot data`: download data sets and show what is found where.

The data sets are the named ones of `fewshot.data.catalog`; each says whether and how it
downloads (`fewshot.data.download.download_dataset`, `dataset_status`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, Command, DataDir, Progress

data_app = typer.Typer(help="Download data sets and show where they are.", no_args_is_help=True)


def _names() -> list[str]:
    from fewshot.data.catalog import DATASETS

    return DATASETS.names()


@data_app.command("download", cls=Command)
def download_command(
    dataset: Annotated[
        str, typer.Argument(help="Named data set to fetch: omniglot, fashion-mnist, ... (see data info).")
    ] = "omniglot",
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if files are present.")] = False,
    compact: Annotated[
        bool,
        typer.Option("--compact/--no-compact", help="Omniglot: also convert the zips to fast-loading .npz."),
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the server.")
    ] = 10.0,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Fetch a data set into the data directory (verified, written atomically)."""
    from fewshot_cli.common import check_choice

    from fewshot.data.download import dataset_status, dataset_title, download_dataset

    check_choice(dataset, _names(), "data set")
    log = (lambda message: None) if as_json else typer.echo
    root = download_dataset(
        dataset,
        data_dir,
        force=force,
        compact=compact,
        progress=False if as_json else progress,
        timeout=timeout,
        log=log,
    )
    if as_json:
        typer.echo(
            json.dumps({"dataset": dataset, "folder": None if root is None else str(root), "ready": True})
        )
    elif root is None:
        typer.echo(f"{dataset} is {dataset_status(dataset).source}: nothing to download")
    else:
        typer.echo(f"{dataset_title(dataset)} is ready in {root}")


@data_app.command("info", cls=Command)
def info_command(
    dataset: Annotated[
        str | None, typer.Argument(help="Show only this named data set (default: all of them).")
    ] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Show the data directory, where it comes from, and the files of each named data set."""
    import os

    from fewshot_cli.common import check_choice

    from fewshot.data.download import dataset_status
    from fewshot.data.paths import ENV_VAR, resolve_data_dir

    names = _names() if dataset is None else [check_choice(dataset, _names(), "data set")]
    if data_dir is not None:
        origin = "--data-dir"
    elif os.environ.get(ENV_VAR):
        origin = f"${ENV_VAR}"
    else:
        origin = "default cache folder"
    # Omniglot first, as before the other data sets came
    states = [dataset_status(name, data_dir) for name in sorted(names, key=lambda n: n != "omniglot")]
    if as_json:
        typer.echo(json.dumps(_document(states, resolve_data_dir(data_dir), origin)))
        return
    typer.echo(f"data directory: {resolve_data_dir(data_dir)} (from {origin})")
    for state in states:
        _echo_state(state)


def _document(states, root, origin: str) -> dict:
    document: dict = {"data_dir": str(root), "origin": origin}
    for state in states:
        if state.name == "omniglot":  # the fields `data info --json` has always had
            document.update(omniglot=str(state.folder), items=dict(state.rows))
    document["datasets"] = {
        s.name: {
            "folder": None if s.folder is None else str(s.folder),
            "items": dict(s.rows),
            "source": s.source,
        }
        for s in states
    }
    return document


def _echo_state(state) -> None:
    if state.folder is None:
        typer.echo(f"{state.name}: {state.source}")
        return
    if state.name != "omniglot" and all(s == "missing" for _, s in state.rows):
        typer.echo(f"{state.name}: {state.folder} (not downloaded: fewshot data download {state.name})")
        return
    typer.echo(f"{state.name}: {state.folder}")
    width = max(len(item) for item, _ in state.rows)
    for item, value in state.rows:
        typer.echo(f"  {item:<{width}}  {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
