"""`fewshot finetune` as a library call: an encoder and labelled data -> a fixed-class model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fewshot.errors import FewshotError


@dataclass
class FinetuneRequest:
    """The settings of one transfer run (the options of `fewshot finetune`)."""

    data: str
    encoder: str | None = None  # None: the shipped Omniglot ProtoNet's encoder
    strategy: str = "full"
    freeze: int = 0
    epochs: int = 20
    lr: float = 1e-4
    head_lr: float = 1e-3
    lr_decay: float = 1.0
    weight_decay: float = 1e-4
    batch_size: int = 64
    augment: bool = True
    hflip: bool = False
    freeze_batchnorm: bool = False
    val_fraction: float = 0.2
    patience: int = 5
    unfreeze_every: int = 2
    out: Path = Path("runs/finetuned.safetensors")
    split: str | None = None
    subset: str = "all"
    clip_model: str | None = None
    pretrained: str | None = None
    image_size: int | None = None
    seed: int = 0
    device: str = "auto"
    data_dir: Path | None = None
    resume: bool = True
    progress: bool | None = None
    group_level: int | None = None  # also accuracy per group: the first N folders of the class path
    nproc: int = 1  # processes (torch.distributed DDP); each takes part of every batch


def strategies() -> tuple[str, ...]:
    """Training strategies, then the frozen-encoder methods fitted without a training loop."""
    from fewshot.transfer.clip_export import exporting_methods
    from fewshot.transfer.export import FROZEN_STRATEGIES
    from fewshot.transfer.strategies import STRATEGIES

    return tuple(STRATEGIES) + tuple(FROZEN_STRATEGIES) + exporting_methods()


def run_finetune(request: FinetuneRequest) -> dict[str, Any]:
    """Check the settings, build the encoder, load the data and train (or fit) the model.
    Returns the report: strategy, encoder, classes, validation accuracy, epochs, checkpoint."""
    import torch

    from fewshot.device import resolve_device
    from fewshot.runs import check_output_file
    from fewshot.transfer.sources import preprocessing_record, weights_provenance

    r = request
    if r.strategy not in strategies():
        raise FewshotError(f"unknown strategy {r.strategy!r}: choose one of {', '.join(strategies())}")
    check_output_file(r.out, "--out")
    config = _config(r)
    from fewshot.scale.distributed import ranks_from_env

    if r.nproc > 1 or ranks_from_env() is not None:
        from fewshot.scale.dist_finetune import check_finetune_launch
        from fewshot.scale.dist_training import launch

        check_finetune_launch(r)
        if r.nproc > 1:
            return launch(run_finetune, r, r.nproc)
    device = resolve_device(r.device)
    config.device = str(device)
    torch.manual_seed(r.seed)  # the head, data order and augmentation; the encoder is seeded below
    options = {"model": r.clip_model, "pretrained": r.pretrained}
    source, items = _source_and_items(r, device, options)
    if items.n_classes < 2:
        raise FewshotError(f"{r.data} has {items.n_classes} class: a classifier needs at least two")
    provenance = weights_provenance(source.encoder)  # source and licence of pretrained weights
    extra = {
        "preprocessing": preprocessing_record(source),
        "source_encoder": source.description,
        **provenance,
    }
    if r.strategy not in _training_strategies():  # fitted on frozen features, no epochs
        report = fit_frozen(
            source, items, r.strategy, r.val_fraction, r.seed, device, r.out, extra, r.group_level
        )
    else:
        report = _train(source, items, config, r, extra)
    return {
        "strategy": r.strategy,
        "encoder": source.description,
        "classes": items.n_classes,
        **provenance,
        **report,
    }


def _training_strategies() -> tuple[str, ...]:
    from fewshot.transfer.strategies import STRATEGIES

    return tuple(STRATEGIES)


def finetune_subset(dataset: str, subset: str) -> str:
    """``all`` for a named data set is the part it trains classifiers on (Fashion-MNIST's
    official ``train``; Omniglot's test classes), for a folder every item."""
    from fewshot.data.catalog import named_dataset

    named = named_dataset(dataset)
    if subset != "all" or named is None:
        return subset
    return getattr(named, "finetune_subset", named.default_subset)


def _source_and_items(r: FinetuneRequest, device, options: dict):
    """The encoder and the labelled items prepared for it. An encoder built to the data's
    shape (Conv-4 from scratch) on a preprocessed named set is sized from the loaded items."""
    from fewshot.build import build_encoder, load_data, load_for_encoder, sized_by_data
    from fewshot.data.catalog import named_dataset

    subset = finetune_subset(r.data, r.subset)
    named = named_dataset(r.data)
    if sized_by_data(r.encoder) and named is not None and not named.takes_transform:
        items = load_data(r.data, subset, r.split, r.data_dir, r.image_size, r.seed)
        source = build_encoder(r.encoder, device, options, data_shape=tuple(items.data.shape), seed=r.seed)
        return source, items
    source = build_encoder(r.encoder, device, options, image_size=r.image_size, seed=r.seed)
    return source, load_for_encoder(source, r.data, subset, r.split, r.data_dir, r.seed)


def _config(r: FinetuneRequest):
    from fewshot.transfer.finetune import FinetuneConfig
    from fewshot.transfer.strategies import STRATEGIES

    fields = {k: v for k, v in asdict(r).items() if k in FinetuneConfig.__dataclass_fields__}
    config = FinetuneConfig(**{**fields, "strategy": r.strategy if r.strategy in STRATEGIES else "full"})
    config.check()
    return config


def _train(source, items, config, r: FinetuneRequest, extra: dict) -> dict[str, Any]:
    from fewshot.transfer.finetune import split_items
    from fewshot.transfer.fit_eval import class_report

    model, result = _finetuner()(
        source.encoder,
        items,
        config,
        out=r.out,
        encoder_name=source.name,
        metadata=extra,
        progress=r.progress,
        resume=r.resume,
    )
    return {
        "best_val_accuracy": result.best_val_accuracy,
        "best_epoch": result.best_epoch + 1,
        "epochs_done": len(result.history),
        "stopped_early": result.stopped_early,
        "checkpoint": str(result.checkpoint),
        # the best model on the validation items finetune held out (the same seeded split)
        **class_report(
            model, split_items(items, config.val_fraction, config.seed)[1], config.device, r.group_level
        ),
    }


def _finetuner():
    """`fewshot.transfer.finetune.finetune`, or its DDP form under a launcher (torchrun)."""
    from functools import partial

    from fewshot.scale.distributed import ranks_from_env
    from fewshot.transfer.finetune import finetune

    ranks = ranks_from_env()
    if ranks is None:
        return finetune
    from fewshot.scale.dist_finetune import finetune_distributed

    return partial(finetune_distributed, ranks)


def fit_frozen(
    source, items, strategy, val_fraction, seed, device, out, extra, group_level=None
) -> dict[str, Any]:
    """linear-probe / simpleshot on the whole set: one atomic write under the --out lock."""
    from fewshot.checkpoints import save_checkpoint
    from fewshot.locking import exclusive_lock
    from fewshot.runs import RunFiles
    from fewshot.transfer.export import fit_frozen_classifier
    from fewshot.transfer.finetune import accuracy, split_items
    from fewshot.transfer.fit_eval import class_report
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
    return {
        "best_val_accuracy": val_acc,
        "best_epoch": None,
        "epochs_done": 0,
        "val_items": len(val_items),
        "checkpoint": str(out),
        **class_report(model, val_items, device, group_level),
    }
