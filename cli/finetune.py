"""`fewshot finetune`: transfer a pretrained encoder to a labelled data set (a new classifier)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    AsJson,
    Command,
    DataDir,
    Device,
    ImageSize,
    Progress,
    Split,
    json_line,
    request_settings,
)
from fewshot_cli.train import positive

STRATEGY_HELP = (
    "full: train everything; partial: freeze the first --freeze blocks; gradual: head first, then "
    "one more block every --unfreeze-every epochs; linear-probe / simpleshot: frozen encoder, "
    "no training loop; coop / cocoop / clip-adapter / clap / zs-lp / lp++ / clip-lora (--encoder "
    "clip): CLIP adapted on the items, class folder names as prompts, saved for `fewshot predict`."
)


def fraction(value: float) -> float:
    """Option callback: a share strictly between 0 and 1."""
    if not 0 < value < 1:
        raise typer.BadParameter(f"{value} is not between 0 and 1 (exclusive)")
    return value


Seed = Annotated[
    int,
    typer.Option(
        "--seed",
        min=0,
        help="Random seed (>= 0): the same seed gives the same validation split, new head, data "
        "order, augmentation and (for an encoder name) initial weights, so the same model.",
    ),
]


Data = Annotated[str, typer.Argument(help="A folder with one subfolder per class, or 'omniglot'.")]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="A fewshot checkpoint (its encoder), 'clip', or an encoder name (random weights). "
        "Default: the shipped Omniglot ProtoNet's encoder.",
    ),
]
Strategy = Annotated[str, typer.Option("--strategy", "-s", help=STRATEGY_HELP)]
Freeze = Annotated[int, typer.Option("--freeze", min=0, help="Blocks frozen at the input side.")]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training items.")]
Lr = Annotated[
    float,
    typer.Option(
        "--lr", callback=positive, help="Learning rate of the top encoder block (1e-4: 10x below training)."
    ),
]
HeadLr = Annotated[float, typer.Option("--head-lr", callback=positive, help="Learning rate of the new head.")]
LrDecay = Annotated[
    float,
    typer.Option(
        "--lr-decay", callback=positive, help="Discriminative rates: each lower block gets lr x this."
    ),
]
WeightDecay = Annotated[float, typer.Option("--weight-decay", min=0, help="AdamW weight decay.")]
ItemsPerStep = Annotated[int, typer.Option("--batch-size", min=1, help="Items per step.")]
Augment = Annotated[bool, typer.Option("--augment/--no-augment", help="Random shifts of training images.")]
Hflip = Annotated[bool, typer.Option("--hflip", help="Also flip training images horizontally.")]
FreezeBN = Annotated[
    bool,
    typer.Option(
        "--freeze-batchnorm",
        help="Keep every BatchNorm's pretrained running statistics while the weights train "
        "(advised with few labelled images per class).",
    ),
]
ValFraction = Annotated[
    float,
    typer.Option("--val-fraction", callback=fraction, help="Share of each class held out for validation."),
]
Patience = Annotated[
    int, typer.Option("--patience", min=0, help="Stop after N epochs without improvement (0: never).")
]
UnfreezeEvery = Annotated[int, typer.Option("--unfreeze-every", min=1, help="Gradual: epochs per phase.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Model to write (.safetensors).")]
Subset = Annotated[
    str, typer.Option("--subset", help="Omniglot: which part of the split; folders: all (default).")
]
Model = Annotated[
    str | None, typer.Option("--model", help="CLIP architecture (with --encoder clip; default ViT-B-32).")
]
Pretrained = Annotated[
    str | None, typer.Option("--pretrained", help="CLIP weights tag or file [default: default].")
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--restart",
        help="Resume an interrupted run found at --out (only one with the same settings); "
        "--restart deletes it and starts over.",
    ),
]
GroupLevel = Annotated[
    int | None,
    typer.Option(
        "--group-level", min=1, help="Also report accuracy per group: the first N folders of the class path."
    ),
]


Nproc = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="Processes (DistributedDataParallel, gloo on CPU, nccl on GPUs); each takes part of "
        "every batch. Or launch with: torchrun --nproc-per-node N -m fewshot finetune ...",
    ),
]


def finetune_command(
    ctx: typer.Context,
    data: Data,
    encoder: Encoder = None,
    strategy: Strategy = "full",
    freeze: Freeze = 0,
    epochs: Epochs = 20,
    lr: Lr = 1e-4,
    head_lr: HeadLr = 1e-3,
    lr_decay: LrDecay = 1.0,
    weight_decay: WeightDecay = 1e-4,
    batch_size: ItemsPerStep = 64,
    augment: Augment = True,
    hflip: Hflip = False,
    freeze_batchnorm: FreezeBN = False,
    val_fraction: ValFraction = 0.2,
    patience: Patience = 5,
    unfreeze_every: UnfreezeEvery = 2,
    out: Out = Path("runs/finetuned.safetensors"),
    split: Split = None,
    subset: Subset = "all",
    clip_model: Model = None,
    pretrained: Pretrained = None,
    image_size: ImageSize = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    resume: Resume = True,
    progress: Progress = None,
    group_level: GroupLevel = None,
    nproc: Nproc = 1,
    as_json: AsJson = False,
) -> None:
    """Fine-tune an encoder plus a new head on labelled data; write a classifier for `fewshot predict`."""
    from fewshot.workflows.finetune import FinetuneRequest, run_finetune

    report = run_finetune(FinetuneRequest(**request_settings(ctx)))
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the group
        return
    if as_json:
        typer.echo(json_line(report))
    else:
        from fewshot.class_accuracy import worst_lines

        typer.echo("\n".join([_summary(report), *worst_lines(report)]))


def _summary(r: dict) -> str:
    if "val_items" in r:  # fitted on frozen embeddings, no epochs
        return (
            f"{r['strategy']} on {r['encoder']}: validation accuracy {r['best_val_accuracy']:.4f} "
            f"({r['val_items']} held-out items, {r['classes']} classes); model: {r['checkpoint']}"
        )
    return (
        f"{r['strategy']} fine-tuning of {r['encoder']}: best validation accuracy "
        f"{r['best_val_accuracy']:.4f} at epoch {r['best_epoch']} of {r['epochs_done']}"
        f"{' (stopped early)' if r['stopped_early'] else ''}; model: {r['checkpoint']}"
    )


def register(app: typer.Typer) -> None:
    app.command("finetune", cls=Command)(finetune_command)
