"""`fewshot adapt`: adapt a model from labelled source data to unlabelled target data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    AsJson,
    ClipModel,
    ClipPretrained,
    Command,
    DataDir,
    Device,
    ImageSize,
    Progress,
    echo_report,
    request_settings,
)
from fewshot_cli.finetune import Encoder, Resume, Seed
from fewshot_cli.train import positive


def _methods() -> str:
    from fewshot.adapt import ADAPTERS

    return ", ".join(ADAPTERS.names())


Source = Annotated[
    str, typer.Option("--source", help="Labelled source data: a named data set or an image folder.")
]
Target = Annotated[
    str,
    typer.Option(
        "--target",
        help="Target data (its labels, if any, only report accuracy): a named data set or an image folder.",
    ),
]
Method = Annotated[str, typer.Option("--method", "-m", help=f"Adaptation method: {_methods()}.")]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A hyperparameter of the method, NAME=VALUE (repeatable)."),
]
SourceEpochs = Annotated[
    int,
    typer.Option("--source-epochs", min=0, help="Epochs training the source-only model (network methods)."),
]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Adaptation epochs (network methods).")]
Lr = Annotated[
    float, typer.Option("--lr", callback=positive, help="SGD learning rate (annealed while adapting).")
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=2, help="Source (and target) items per step.")]
Augment = Annotated[bool, typer.Option("--augment/--no-augment", help="Random shifts of training images.")]
Select = Annotated[
    str,
    typer.Option(
        "--select",
        help="Unsupervised validator choosing the checkpoint or hyperparameter: im, entropy or snd.",
    ),
]
Keep = Annotated[
    str,
    typer.Option(
        "--keep",
        help="Model written: auto (the adapted one unless negative transfer is detected), adapted, "
        "source-only.",
    ),
]
TargetLabels = Annotated[
    bool,
    typer.Option(
        "--target-labels/--no-target-labels",
        help="Report target accuracy from the target's labels (never used to train or select).",
    ),
]
TargetShift = Annotated[
    str | None,
    typer.Option(
        "--target-shift",
        help="Shift the target images first: blur-contrast, rotation or inversion (the shift suites).",
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Model to write (.safetensors).")]
Split = Annotated[str | None, typer.Option("--split", help="Split of named data sets (their default).")]
SourceSubset = Annotated[
    str, typer.Option("--source-subset", help="Part of the source (all: its training part).")
]
TargetSubset = Annotated[str, typer.Option("--target-subset", help="Part of the target data set.")]


def adapt_command(
    ctx: typer.Context,
    source: Source,
    target: Target,
    method: Method,
    encoder: Encoder = None,
    params: Params = None,
    source_epochs: SourceEpochs = 10,
    epochs: Epochs = 10,
    lr: Lr = 0.01,
    batch_size: BatchSize = 64,
    augment: Augment = True,
    select: Select = "im",
    keep: Keep = "auto",
    target_labels: TargetLabels = True,
    target_shift: TargetShift = None,
    out: Out = Path("runs/adapted.safetensors"),
    split: Split = None,
    source_subset: SourceSubset = "all",
    target_subset: TargetSubset = "all",
    clip_model: ClipModel = None,
    pretrained: ClipPretrained = None,
    image_size: ImageSize = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    resume: Resume = True,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Adapt a model to unlabelled target data; report source-only beside adapted; write a classifier."""
    from fewshot.workflows.adapt import AdaptRequest, run_adapt

    values = request_settings(ctx)
    values["params"] = list(values["params"] or [])
    report = run_adapt(AdaptRequest(**values))
    if report["negative_transfer"]:
        typer.echo(_warning(report), err=True)
    echo_report(report, as_json, _summary)


def _warning(r: dict) -> str:
    held = (
        "the output holds the source-only model (--keep adapted to write the adapted one)"
        if r["kept"] == "source-only"
        else "the output holds the adapted model, as --keep asked"
    )
    return f"warning: negative transfer with {r['method']}: {r['reason']}; {held}"


def _evaluation(e: dict, select: str) -> str:
    acc = "" if e["accuracy"] is None else f"accuracy {e['accuracy']:.4f}, "
    return acc + ", ".join(f"{k} {v:.4f}" for k, v in e["scores"].items())


def _summary(r: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "defaults"
    return "\n".join(
        [
            f"{r['method']} ({params}; selected by {r['select']}) on {r['encoder']}, "
            f"{r['source']} -> {r['target']}",
            f"  source-only: {_evaluation(r['source_only'], r['select'])}",
            f"  adapted:     {_evaluation(r['adapted'], r['select'])}",
            f"  model ({r['kept']}): {r['checkpoint']}",
        ]
    )


Models = Annotated[
    list[Path], typer.Argument(help="Two or more adapted models (.safetensors) of the same classes.")
]


RankSource = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="The labelled source data the models were adapted from: rank by reverse validation "
        "(a k-NN fitted on the target with each model's labels, scored on the source, in pixels).",
    ),
]
SourceSubset = Annotated[str, typer.Option("--source-subset", help="Part of the source data set.")]


def rank_adapted_command(
    ctx: typer.Context,
    models: Models,
    target: Target,
    target_subset: TargetSubset = "all",
    split: Split = None,
    target_labels: TargetLabels = True,
    source: RankSource = None,
    source_subset: SourceSubset = "all",
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Rank adapted models of different methods on unlabelled target data (reverse validation
    with --source, else ensemble agreement)."""
    from fewshot.workflows.rank_adapted import RankAdaptedRequest, run_rank_adapted

    report = run_rank_adapted(RankAdaptedRequest(**request_settings(ctx)))
    echo_report(report, as_json, _ranking)


def _ranking(r: dict) -> str:
    how = f"reverse validation on {r['source']}"
    if r["ranked_by"] == "agreement":
        how = "agreement with the ensemble"
    lines = [f"{r['items']} target items of {r['target']}, ranked by {how}:"]
    for rank, row in enumerate(r["models"], 1):
        acc = "" if row["accuracy"] is None else f"  accuracy {row['accuracy']:.4f}"
        scores = ", ".join(f"{k} {v:.4f}" for k, v in row["scores"].items())
        rev = "" if row["reverse"] is None else f"reverse {row['reverse']:.4f}  "
        lines.append(f"{rank:>3}  {rev}agreement {row['agreement']:.4f}  {row['name']}  ({scores}){acc}")
    lines.append(f"best: {r['best']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("adapt", cls=Command)(adapt_command)
    app.command("rank-adapted", cls=Command)(rank_adapted_command)
