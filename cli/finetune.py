"""`fewshot finetune`: transfer a pretrained encoder to a labelled data set (a new classifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import AsJson, Command, DataDir, Device, ImageSize, Progress, Split
from fewshot_cli.train import positive

STRATEGY_HELP = (
    "full: train everything; partial: freeze the first --freeze blocks; gradual: head first, then "
    "one more block every --unfreeze-every epochs; linear-probe / simpleshot: frozen encoder, "
    "no training loop."
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


def finetune_command(
    data: Annotated[str, typer.Argument(help="A folder with one subfolder per class, or 'omniglot'.")],
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            "-e",
            help="A fewshot checkpoint (its encoder), 'clip', or an encoder name (random weights). "
            "Default: the shipped Omniglot ProtoNet's encoder.",
        ),
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help=STRATEGY_HELP)] = "full",
    freeze: Annotated[int, typer.Option("--freeze", min=0, help="Blocks frozen at the input side.")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training items.")] = 20,
    lr: Annotated[
        float,
        typer.Option(
            "--lr",
            callback=positive,
            help="Learning rate of the top encoder block (1e-4: 10x below training).",
        ),
    ] = 1e-4,
    head_lr: Annotated[
        float, typer.Option("--head-lr", callback=positive, help="Learning rate of the new head.")
    ] = 1e-3,
    lr_decay: Annotated[
        float,
        typer.Option(
            "--lr-decay", callback=positive, help="Discriminative rates: each lower block gets lr x this."
        ),
    ] = 1.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0, help="AdamW weight decay.")] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per step.")] = 64,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Random shifts of training images.")
    ] = True,
    hflip: Annotated[bool, typer.Option("--hflip", help="Also flip training images horizontally.")] = False,
    val_fraction: Annotated[
        float,
        typer.Option(
            "--val-fraction", callback=fraction, help="Share of each class held out for validation."
        ),
    ] = 0.2,
    patience: Annotated[
        int, typer.Option("--patience", min=0, help="Stop after N epochs without improvement (0: never).")
    ] = 5,
    unfreeze_every: Annotated[
        int, typer.Option("--unfreeze-every", min=1, help="Gradual: epochs per phase.")
    ] = 2,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model to write (.safetensors).")] = Path(
        "runs/finetuned.safetensors"
    ),
    split: Split = None,
    subset: Annotated[
        str, typer.Option("--subset", help="Omniglot: which part of the split; folders: all (default).")
    ] = "all",
    clip_model: Annotated[
        str | None, typer.Option("--model", help="CLIP architecture (with --encoder clip; default ViT-B-32).")
    ] = None,
    pretrained: Annotated[
        str | None, typer.Option("--pretrained", help="CLIP weights tag or file [default: default].")
    ] = None,
    image_size: ImageSize = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--restart",
            help="Resume an interrupted run found at --out (only one with the same settings); "
            "--restart deletes it and starts over.",
        ),
    ] = True,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Fine-tune an encoder plus a new head on labelled data; write a classifier for `fewshot predict`."""
    import torch

    from fewshot.device import resolve_device
    from fewshot.errors import FewshotError
    from fewshot.runs import check_output_file
    from fewshot.transfer.export import FROZEN_STRATEGIES
    from fewshot.transfer.finetune import FinetuneConfig, finetune
    from fewshot.transfer.sources import load_for_encoder, preprocessing_record, resolve_encoder
    from fewshot.transfer.strategies import STRATEGIES

    if strategy not in STRATEGIES + FROZEN_STRATEGIES:
        raise FewshotError(
            f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES + FROZEN_STRATEGIES)}"
        )
    check_output_file(out, "--out")
    config = FinetuneConfig(
        strategy=strategy if strategy in STRATEGIES else "full",
        freeze=freeze,
        epochs=epochs,
        lr=lr,
        head_lr=head_lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        batch_size=batch_size,
        augment=augment,
        hflip=hflip,
        val_fraction=val_fraction,
        patience=patience,
        unfreeze_every=unfreeze_every,
        seed=seed,
    )
    config.check()
    torch_device = resolve_device(device)
    config.device = str(torch_device)
    torch.manual_seed(seed)  # the head, data order and augmentation; the encoder is seeded below
    source = resolve_encoder(encoder, torch_device, clip_model, pretrained, image_size, seed=seed)
    if data == "omniglot" and subset == "all":
        subset = "test"
    items = load_for_encoder(source, data, subset, split, data_dir, seed)
    if items.n_classes < 2:
        raise FewshotError(f"{data} has {items.n_classes} class: a classifier needs at least two")
    extra = {"preprocessing": preprocessing_record(source), "source_encoder": source.description}
    if strategy in FROZEN_STRATEGIES:
        report = _fit_frozen(source, items, strategy, val_fraction, seed, torch_device, out, extra)
        if not as_json:
            typer.echo(
                f"{strategy} on {source.description}: validation accuracy {report['best_val_accuracy']:.4f} "
                f"({report['val_items']} held-out items, {items.n_classes} classes); model: {out}"
            )
    else:
        _, result = finetune(
            source.encoder,
            items,
            config,
            out=out,
            encoder_name=source.name,
            metadata=extra,
            progress=progress,
            resume=resume,
        )
        report = {
            "best_val_accuracy": result.best_val_accuracy,
            "best_epoch": result.best_epoch + 1,
            "epochs_done": len(result.history),
            "stopped_early": result.stopped_early,
        }
        if not as_json:
            typer.echo(
                f"{strategy} fine-tuning of {source.description}: best validation accuracy "
                f"{result.best_val_accuracy:.4f} at epoch {result.best_epoch + 1} of {result.epochs_done}"
                f"{' (stopped early)' if result.stopped_early else ''}; model: {result.checkpoint}"
            )
    if as_json:
        import json

        from fewshot.runs import json_safe

        document = {"strategy": strategy, "encoder": source.description, "classes": items.n_classes, **report}
        typer.echo(json.dumps(json_safe({**document, "checkpoint": str(out)}), allow_nan=False))


def _fit_frozen(source, items, strategy, val_fraction, seed, device, out, extra) -> dict:
    """linear-probe / simpleshot on the whole set: one atomic write under the --out lock."""
    from fewshot.checkpoints import save_checkpoint
    from fewshot.locking import exclusive_lock
    from fewshot.runs import RunFiles
    from fewshot.transfer.export import fit_frozen_classifier
    from fewshot.transfer.finetune import accuracy, split_items
    from fewshot.transfer.sources import classifier_metadata

    train_items, val_items = split_items(items, val_fraction, seed)
    model = fit_frozen_classifier(source.encoder.to(device).eval(), train_items, strategy)
    val_acc = accuracy(model, val_items, device)
    meta = {
        **classifier_metadata(source.name, model),
        **extra,
        "finetune": {"strategy": strategy, "val_fraction": val_fraction, "seed": seed},
        "dataset": items.info,
        "val_accuracy": val_acc,
    }
    with exclusive_lock(out, "this model"):
        RunFiles(out).clear()  # a fine-tuning run's state there would otherwise resume later
        save_checkpoint(out, model, meta)
    return {"best_val_accuracy": val_acc, "best_epoch": None, "epochs_done": 0, "val_items": len(val_items)}


def register(app: typer.Typer) -> None:
    app.command("finetune", cls=Command)(finetune_command)
