"""`fewshot representations`: look at an encoder's features (2-D map) and probe its blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    AsJson,
    Command,
    DataDir,
    Device,
    Progress,
    Seed,
    Split,
    json_line,
    request_settings,
)
from fewshot_cli.curves import Encoder
from fewshot_cli.finetune import Subset
from fewshot_cli.rank_models import Data, ImageSide

PerClass = Annotated[int | None, typer.Option("--per-class", min=2, help="Items per class to use.")]
Method = Annotated[str, typer.Option("--method", help="tsne (scikit-learn) or umap (needs umap-learn).")]
Map = Annotated[
    Path | None,
    typer.Option("--map", help="Draw the 2-D map of the features, coloured by class, into this .png."),
]
Probe = Annotated[bool, typer.Option("--probe", help="Fit a linear probe on every block's pooled output.")]
ProbePlot = Annotated[
    Path | None, typer.Option("--probe-plot", help="With --probe: draw accuracy per block into this .png.")
]
Held = Annotated[
    float,
    typer.Option("--val-fraction", min=0.01, max=0.99, help="Share of each class the probes are tested on."),
]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the report to this .json file.")]


def representations_command(
    ctx: typer.Context,
    data: Data,
    encoder: Encoder = None,
    per_class: PerClass = 50,
    method: Method = "tsne",
    map: Map = None,
    probe: Probe = False,
    probe_plot: ProbePlot = None,
    val_fraction: Held = 0.3,
    subset: Subset = "all",
    split: Split = None,
    image_size: ImageSide = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    out: Out = None,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """A 2-D map (t-SNE/UMAP) of an encoder's features by class, and linear probes per block."""
    from fewshot.workflows.representations import RepresentationsRequest, run_representations

    report = run_representations(RepresentationsRequest(**request_settings(ctx, as_json)))
    if as_json:
        typer.echo(json_line(report))
        return
    lines = [f"{report['encoder']} on {report['data']}: {report['items']} items"]
    if "map" in report:
        lines.append(f"map ({report['method']}): {report['map']}")
    for row in report.get("probe", []):
        lines.append(
            f"block {row['block']:>2} {row['module']:<22} {row['features']:>5} features  "
            f"probe accuracy {100 * row['accuracy']:.2f}%"
        )
    if report.get("probe_plot"):
        lines.append(f"probe plot: {report['probe_plot']}")
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("representations", cls=Command)(representations_command)
