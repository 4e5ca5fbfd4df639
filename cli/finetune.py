"""`fewshot finetune`: transfer a pretrained encoder to a labelled data set (a new classifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import Command, DataDir, Device, ImageSize, Progress, Seed, Split

STRATEGY_HELP = (
    "full: train everything; partial: freeze the first --freeze blocks; gradual: head first, then "
    "one more block every --unfreeze-every epochs; linear-probe / simpleshot: frozen encoder, "
    "no training loop."
)


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
    freeze: Annotated[int, typer.Option("--freeze", help="Blocks frozen at the input side.")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training items.")] = 20,
    lr: Annotated[
        float, typer.Option("--lr", help="Learning rate of the top encoder block (1e-4: 10x below training).")
    ] = 1e-4,
    head_lr: Annotated[float, typer.Option("--head-lr", help="Learning rate of the new head.")] = 1e-3,
    lr_decay: Annotated[
        float, typer.Option("--lr-decay", help="Discriminative rates: each lower block gets lr x this.")
    ] = 1.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Items per step.")] = 64,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Random shifts of training images.")
    ] = True,
    hflip: Annotated[bool, typer.Option("--hflip", help="Also flip training images horizontally.")] = False,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of each class held out for validation.")
    ] = 0.2,
    patience: Annotated[
        int, typer.Option("--patience", help="Stop after N epochs without improvement (0: never).")
    ] = 5,
    unfreeze_every: Annotated[int, typer.Option("--unfreeze-every", help="Gradual: epochs per phase.")] = 2,
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
    pretrained: Annotated[str, typer.Option("--pretrained", help="CLIP weights tag or file.")] = "default",
    image_size: ImageSize = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    progress: Progress = None,
) -> None:
    """Fine-tune an encoder plus a new head on labelled data; write a classifier for `fewshot predict`."""
    from fewshot.checkpoints import save_checkpoint
    from fewshot.device import resolve_device
    from fewshot.errors import FewshotError
    from fewshot.transfer.export import FROZEN_STRATEGIES, fit_frozen_classifier
    from fewshot.transfer.finetune import FinetuneConfig, accuracy, finetune, split_items
    from fewshot.transfer.sources import (
        classifier_metadata,
        load_for_encoder,
        preprocessing_record,
        resolve_encoder,
    )
    from fewshot.transfer.strategies import STRATEGIES

    if strategy not in STRATEGIES + FROZEN_STRATEGIES:
        raise FewshotError(
            f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES + FROZEN_STRATEGIES)}"
        )
    if out.suffix != ".safetensors":
        raise FewshotError(f"--out must end in .safetensors, got {out}")
    torch_device = resolve_device(device)
    source = resolve_encoder(encoder, torch_device, clip_model, pretrained, image_size)
    if data == "omniglot" and subset == "all":
        subset = "test"
    items = load_for_encoder(source, data, subset, split, data_dir, seed)
    if items.n_classes < 2:
        raise FewshotError(f"{data} has {items.n_classes} class: a classifier needs at least two")
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
        device=str(torch_device),
    )
    config.check()
    extra = {"preprocessing": preprocessing_record(source), "source_encoder": source.description}
    if strategy in FROZEN_STRATEGIES:
        train_items, val_items = split_items(items, val_fraction, seed)
        model = fit_frozen_classifier(source.encoder.to(torch_device).eval(), train_items, strategy)
        val_acc = accuracy(model, val_items, torch_device)
        meta = {
            **classifier_metadata(source.name, model),
            **extra,
            "finetune": {"strategy": strategy, "val_fraction": val_fraction, "seed": seed},
            "dataset": items.info,
            "val_accuracy": val_acc,
        }
        save_checkpoint(out, model, meta)
        typer.echo(
            f"{strategy} on {source.description}: validation accuracy {val_acc:.4f} "
            f"({len(val_items)} held-out items, {items.n_classes} classes); model: {out}"
        )
        return
    _, result = finetune(
        source.encoder,
        items,
        config,
        out=out,
        encoder_name=source.name,
        metadata=extra,
        progress=progress,
    )
    typer.echo(
        f"{strategy} fine-tuning of {source.description}: best validation accuracy "
        f"{result.best_val_accuracy:.4f} at epoch {result.best_epoch + 1} of {result.epochs_done}"
        f"{' (stopped early)' if result.stopped_early else ''}; model: {result.checkpoint}"
    )


def register(app: typer.Typer) -> None:
    app.command("finetune", cls=Command)(finetune_command)
