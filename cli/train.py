"""`fewshot train`: meta-train a learner on episodes and write a checkpoint."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    AsJson,
    Command,
    DataDir,
    Dataset,
    Device,
    ImageSize,
    Progress,
    Queries,
    Seed,
    Shots,
    Split,
)

MAML_METHODS = ("maml", "fomaml", "anil")


def positive(value: float | None) -> float | None:
    """Option callback: refuse zero, negative, infinite and NaN values ("Invalid value for ...")."""
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive number")
    return value


TRAIN_SUBSET = {"vinyals": "train", "lake": "background", "random": "train"}


def train_command(
    method: Annotated[
        str, typer.Option("--method", "-m", help="Learner: protonet, maml, fomaml, anil, ...")
    ] = "protonet",
    encoder: Annotated[
        str, typer.Option("--encoder", "-e", help="Encoder architecture (conv4, resnet12, ...).")
    ] = "conv4",
    dataset: Dataset = "omniglot",
    split: Split = None,
    ways: Annotated[
        int | None, typer.Option("--ways", "-n", min=2, help="Classes per episode (default: 60; MAML: 5).")
    ] = None,
    shots: Shots = 1,
    queries: Queries = 5,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Training episodes (meta-steps for MAML).")
    ] = 10_000,
    lr: Annotated[float, typer.Option("--lr", callback=positive, help="Adam learning rate (> 0).")] = 1e-3,
    lr_step: Annotated[
        int | None,
        typer.Option(
            "--lr-step", min=0, help="Halve the learning rate every N steps; 0: constant (MAML's default)."
        ),
    ] = None,
    meta_batch: Annotated[
        int | None,
        typer.Option(
            "--meta-batch", min=1, help="Episodes per optimiser step (default 1; MAML: 32 5-way, 16 20-way)."
        ),
    ] = None,
    inner_lr: Annotated[
        float | None,
        typer.Option("--inner-lr", callback=positive, help="MAML: inner step size (0.4 5-way, 0.1 20-way)."),
    ] = None,
    inner_steps: Annotated[
        int | None,
        typer.Option("--inner-steps", min=1, help="MAML: inner steps in training (1 5-way, 5 20-way)."),
    ] = None,
    test_inner_steps: Annotated[
        int | None, typer.Option("--test-inner-steps", min=1, help="MAML: inner steps at test time (3 / 5).")
    ] = None,
    first_order: Annotated[
        bool, typer.Option("--first-order", help="MAML/ANIL: drop the second-order term.")
    ] = False,
    learn_inner_lr: Annotated[
        bool, typer.Option("--learn-inner-lr", help="MAML: learn per-parameter inner step sizes (Meta-SGD).")
    ] = False,
    strategy: Annotated[
        str, typer.Option("--strategy", help="MAML execution: auto, loop, vmap or grouped.")
    ] = "auto",
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Validate every N steps.")] = 500,
    val_episodes: Annotated[
        int, typer.Option("--val-episodes", min=1, help="Validation episodes (5-way).")
    ] = 200,
    metric: Annotated[
        str | None, typer.Option("--metric", help="ProtoNet distance: euclidean (default) or cosine.")
    ] = None,
    mixed_precision: Annotated[
        bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA GPUs (bfloat16 or float16).")
    ] = True,
    patience: Annotated[
        int,
        typer.Option("--patience", min=0, help="Stop after N validations without improvement (0: never)."),
    ] = 0,
    trainval: Annotated[
        bool,
        typer.Option(
            "--trainval",
            help="Train on the training and validation classes together, without validation, and "
            "keep the last step (Snell et al.'s final run: choose --steps with a validated run first).",
        ),
    ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")] = Path(
        "runs/model.safetensors"
    ),
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--restart",
            help="Resume an interrupted run found at --out, only one with the same settings "
            "(--steps included: a longer run is a new run, its last validation and checkpoint "
            "depend on --steps); --restart deletes it and starts over.",
        ),
    ] = True,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    image_size: ImageSize = None,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Meta-train a few-shot learner on N-way K-shot episodes and write its best checkpoint."""
    import torch

    from fewshot.checkpoints import learner_metadata
    from fewshot.data.loading import load_dataset
    from fewshot.data.splits import holdout_classes, join_classes
    from fewshot.encoders import ENCODERS
    from fewshot.errors import DataError, FewshotError
    from fewshot.learners import LEARNERS
    from fewshot.runs import check_output_file
    from fewshot.training import TrainConfig, train

    learner_class = LEARNERS.get(method)
    ENCODERS.get(encoder)
    if metric is not None:
        if metric not in ("euclidean", "cosine"):
            raise FewshotError(f"unknown metric {metric!r}; choose one of: euclidean, cosine")
        if "metric" not in inspect.signature(LEARNERS.get(method)).parameters:
            raise FewshotError(f"--metric does not apply to {method}")
    if not learner_class.meta_trainable:
        raise FewshotError(
            f"method {method!r} has no meta-training loss; `fewshot train` trains "
            f"{', '.join(n for n in LEARNERS.names() if LEARNERS.get(n).meta_trainable)} "
            "(use `fewshot finetune` for fine-tuning strategies)"
        )
    maml = method in MAML_METHODS
    if ways is None:
        ways = learner_class.default_train_ways
    if (
        not maml
        and (inner_lr, inner_steps, test_inner_steps) != (None, None, None)
        or (not maml and (first_order or learn_inner_lr or strategy != "auto"))
    ):
        raise FewshotError(f"--inner-lr/--inner-steps/--first-order/... are MAML options, not {method}'s")
    check_output_file(out, "--out")
    val_data = None
    if dataset == "omniglot":
        split = split or "vinyals"
        if split == "vinyals" and trainval:
            train_data = load_dataset(dataset, "trainval", split, data_dir, image_size, seed)
        else:
            train_data = load_dataset(
                dataset, TRAIN_SUBSET.get(split, "train"), split, data_dir, image_size, seed
            )
        if split == "vinyals" and not trainval:
            val_data = load_dataset(dataset, "val", split, data_dir, image_size, seed)
        elif not trainval:
            train_data, val_data = holdout_classes(train_data, 0.1, seed)
    else:
        train_data = load_dataset(dataset, "train", split, data_dir, image_size, seed)
        try:
            val_data = load_dataset(dataset, "val", split, data_dir, image_size, seed)
        except DataError:
            if not trainval:
                train_data, val_data = holdout_classes(train_data, 0.1, seed)
        if trainval and val_data is not None:
            train_data, val_data = join_classes(train_data, val_data, "trainval"), None
    channels, side = train_data.data.shape[1], train_data.data.shape[-1]
    torch.manual_seed(seed)  # the initial weights are the seed's too
    enc = ENCODERS.create(encoder, **_encoder_kwargs(encoder, channels, side))
    learner_kwargs: dict = {"metric": metric} if metric else {}
    if maml:
        learner_kwargs = {
            "ways": ways,
            "inner_lr": inner_lr,
            "inner_steps": inner_steps,
            "test_inner_steps": test_inner_steps,
            "learn_inner_lr": learn_inner_lr,
            "strategy": strategy,
        }
        if first_order:
            learner_kwargs["first_order"] = True
    learner = learner_class(enc, **learner_kwargs)
    defaults = learner.train_defaults() if hasattr(learner, "train_defaults") else {}
    config = TrainConfig(
        ways=ways,
        shots=shots,
        queries=queries,
        steps=steps,
        lr=lr,
        lr_step=defaults.get("lr_step", 2_000) if lr_step is None else lr_step,
        meta_batch=defaults.get("meta_batch", 1) if meta_batch is None else meta_batch,
        val_episodes=val_episodes,
        val_every=val_every,
        patience=patience,
        seed=seed,
        device=device,
        mixed_precision=mixed_precision,
        val_ways=min(5, ways if maml else 5, val_data.n_classes if val_data is not None else 5),
    )
    meta = learner_metadata(method, encoder, learner)
    result = train(
        learner,
        train_data,
        out,
        config,
        val_data=val_data,
        metadata=meta,
        resume=resume,
        progress=progress,
    )
    _report(result, val_data is not None, as_json)


def _report(result, validated: bool, as_json: bool) -> None:
    import json
    from dataclasses import asdict

    if as_json:
        typer.echo(json.dumps(asdict(result), allow_nan=False))
        return
    if result.resumed_from:
        typer.echo(f"resumed the run found at --out from step {result.resumed_from}")
    if not validated:
        typer.echo(
            f"trained on train+val without validation: kept step {result.best_step} "
            f"({result.seconds:.0f} s); checkpoint: {result.checkpoint}"
        )
    else:
        typer.echo(
            f"best validation accuracy {result.best_val_accuracy:.4f} at step {result.best_step} "
            f"({result.steps_done} steps, {result.seconds:.0f} s); checkpoint: {result.checkpoint}"
            f"{' (stopped early)' if result.stopped_early else ''}"
        )


def _encoder_kwargs(encoder: str, channels: int, side: int) -> dict:
    if encoder in ("conv4", "resnet12"):
        return {"in_channels": channels, "image_size": side}
    return {}


def register(app: typer.Typer) -> None:
    app.command("train", cls=Command)(train_command)
