"""`fewshot review`: check the labels of `fewshot label` / `fewshot predict` in a browser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, Command, Device

Results = Annotated[Path, typer.Argument(help="The CSV (or JSON Lines) that fewshot label or predict wrote.")]
Images = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="Serve images only from under this folder; relative paths in the results are taken "
        "from it (default: the deepest folder holding every image listed).",
    ),
]
Port = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")]
Host = Annotated[
    str,
    typer.Option(
        "--host", help="Address to listen on. Anything but 127.0.0.1 lets other machines see your images."
    ),
]
OpenBrowser = Annotated[bool, typer.Option("--open", help="Open the page in the default web browser.")]
ExportDir = Annotated[
    Path | None,
    typer.Option(
        "--export-dir", help="Where exports go (default: RESULTS.review/export/ beside the results)."
    ),
]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="Encoder for the refit on accepted images: a checkpoint, an encoder name or "
        "family:architecture (default: the shipped Omniglot ProtoNet's, as fewshot predict).",
    ),
]


def review_command(
    results: Results,
    images: Images = None,
    port: Port = 8765,
    host: Host = "127.0.0.1",
    open_browser: OpenBrowser = False,
    export_dir: ExportDir = None,
    encoder: Encoder = None,
    device: Device = "cpu",
    as_json: AsJson = False,
) -> None:
    """Review labels in the browser: a gallery per label, least certain first; fix them with keys."""
    from fewshot.workflows.review import ReviewRequest, is_loopback, open_review

    request = ReviewRequest(results, images, host, port, export_dir, encoder, device)
    server = open_review(request)
    summary = server.session.state.summary()
    if not is_loopback(host):
        typer.echo(
            f"warning: listening on {host}: anyone who can reach this machine on port {server.port} "
            "can see these images (the page still needs its token to change anything)",
            err=True,
        )
    if as_json:
        info = {"url": server.url, "journal": str(server.session.state.journal.path), **summary}
        typer.echo(json.dumps(info))
    else:
        typer.echo(
            f"reviewing {summary['images']} images of {results} ({summary['reviewed']} reviewed so far); "
            f"images from {server.session.root.root}"
        )
        typer.echo(f"open {server.url}  (Ctrl-C stops; decisions are saved as you make them)")
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.serve()
    done = server.session.state.summary()
    typer.echo(
        f"stopped: {done['reviewed']} of {done['images']} reviewed; "
        f"decisions in {server.session.state.journal.path}",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("review", cls=Command)(review_command)
