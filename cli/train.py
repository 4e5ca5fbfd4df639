"""`fewshot train`: meta-train a learner on episodes and write a checkpoint."""

from __future__ import annotations

import os
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
    encoder_names,
    method_names,
)
from fewshot_cli.episode_options import Rotations, SkipSmallGroups, VariableEpisodes, WithinGroup


def positive(value: float | None) -> float | None:
    """Option callback: refuse zero, negative, infinite and NaN values ("Invalid value for ...")."""
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive number")
    return value


Method = Annotated[
    str,
    typer.Option(
        "--method",
        "-m",
        help=f"Learner, one with a meta-training loss (registered: {', '.join(method_names())}).",
    ),
]
Encoder = Annotated[
    str, typer.Option("--encoder", "-e", help=f"Encoder architecture ({', '.join(encoder_names())}).")
]
TrainWays = Annotated[
    int | None, typer.Option("--ways", "-n", min=2, help="Classes per episode (default: 60; MAML: 5).")
]
Steps = Annotated[int, typer.Option("--steps", min=1, help="Training episodes (meta-steps for MAML).")]
Lr = Annotated[float, typer.Option("--lr", callback=positive, help="Adam learning rate (> 0).")]
LrStep = Annotated[
    int | None,
    typer.Option(
        "--lr-step", min=0, help="Halve the learning rate every N steps; 0: constant (MAML's default)."
    ),
]
MetaBatch = Annotated[
    int | None,
    typer.Option(
        "--meta-batch", min=1, help="Episodes per optimiser step (default 1; MAML: 32 5-way, 16 20-way)."
    ),
]
InnerLr = Annotated[
    float | None,
    typer.Option("--inner-lr", callback=positive, help="MAML: inner step size (0.4 5-way, 0.1 20-way)."),
]
InnerSteps = Annotated[
    int | None,
    typer.Option("--inner-steps", min=1, help="MAML: inner steps in training (1 5-way, 5 20-way)."),
]
TestInnerSteps = Annotated[
    int | None, typer.Option("--test-inner-steps", min=1, help="MAML: inner steps at test time (3 / 5).")
]
FirstOrder = Annotated[bool, typer.Option("--first-order", help="MAML/ANIL: drop the second-order term.")]
LearnInnerLr = Annotated[
    bool, typer.Option("--learn-inner-lr", help="MAML: learn per-parameter inner step sizes (Meta-SGD).")
]
Strategy = Annotated[
    str | None,
    typer.Option("--strategy", help="MAML execution: auto, loop, vmap or grouped [default: auto]."),
]
ValEvery = Annotated[int, typer.Option("--val-every", min=1, help="Validate every N steps.")]
ValEpisodes = Annotated[int, typer.Option("--val-episodes", min=1, help="Validation episodes (5-way).")]
Metric = Annotated[
    str | None, typer.Option("--metric", help="ProtoNet distance: euclidean (default) or cosine.")
]
Amp = Annotated[
    bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA GPUs (bfloat16 or float16).")
]
Patience = Annotated[
    int, typer.Option("--patience", min=0, help="Stop after N validations without improvement (0: never).")
]
TrainVal = Annotated[
    bool,
    typer.Option(
        "--trainval",
        help="Train on the training and validation classes together, without validation, and "
        "keep the last step (Snell et al.'s final run: choose --steps with a validated run first).",
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write (.safetensors).")]
Nproc = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="Processes (torch.distributed, gloo on CPU, nccl on GPUs); each takes "
        "part of every meta-batch. Or launch with: torchrun --nproc-per-node N -m fewshot train ...",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--restart",
        help="Resume an interrupted run found at --out, only one with the same settings "
        "(--steps included: a longer run is a new run, its last validation and checkpoint "
        "depend on --steps); --restart deletes it and starts over.",
    ),
]


def train_command(
    ctx: typer.Context,
    method: Method = "protonet",
    encoder: Encoder = "conv4",
    dataset: Dataset = "omniglot",
    split: Split = None,
    ways: TrainWays = None,
    shots: Shots = 1,
    queries: Queries = 5,
    steps: Steps = 10_000,
    lr: Lr = 1e-3,
    lr_step: LrStep = None,
    meta_batch: MetaBatch = None,
    inner_lr: InnerLr = None,
    inner_steps: InnerSteps = None,
    test_inner_steps: TestInnerSteps = None,
    first_order: FirstOrder = False,
    learn_inner_lr: LearnInnerLr = False,
    strategy: Strategy = None,
    val_every: ValEvery = 500,
    val_episodes: ValEpisodes = 200,
    metric: Metric = None,
    mixed_precision: Amp = True,
    patience: Patience = 0,
    trainval: TrainVal = False,
    out: Out = Path("runs/model.safetensors"),
    resume: Resume = True,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    image_size: ImageSize = None,
    rotations: Rotations = None,
    within_group: WithinGroup = False,
    skip_small_groups: SkipSmallGroups = False,
    variable_episodes: VariableEpisodes = False,
    nproc: Nproc = 1,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Meta-train a few-shot learner on N-way K-shot episodes and write its best checkpoint."""
    from fewshot.workflows.train import TrainRequest, meta_train

    settings = {k: v for k, v in ctx.params.items() if k != "as_json"}
    result, validated = meta_train(TrainRequest(**settings))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the group
        _report(result, validated, as_json)


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


def register(app: typer.Typer) -> None:
    app.command("train", cls=Command)(train_command)
