"""`fewshot eval`: N-way K-shot evaluation with a 95% confidence interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    ClipModel,
    ClipPretrained,
    Command,
    DataDir,
    Dataset,
    Device,
    Episodes,
    ImageSize,
    Precision,
    Progress,
    Queries,
    Seed,
    Shots,
    Split,
    Ways,
)

SIZED_ENCODERS = ("conv4", "resnet12", "identity")  # built to the data's shape


def eval_command(
    ways: Ways = 5,
    shots: Shots = 1,
    queries: Queries = 15,
    episodes: Episodes = 1000,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            "-m",
            help="Learner (default: the checkpoint's; another frozen-encoder learner "
            "reuses the checkpoint's encoder).",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", "-c", help="Trained model (default: the shipped Omniglot ProtoNet)."),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            "-e",
            help="Without --checkpoint: a registry encoder: clip (pretrained; --model, --pretrained; "
            "image-folder --dataset) or conv4/resnet12 (untrained baseline).",
        ),
    ] = None,
    model: ClipModel = "ViT-B-32",
    pretrained: ClipPretrained = "default",
    precision: Precision = "auto",
    metric: Annotated[
        str | None, typer.Option("--metric", help="euclidean or cosine (ProtoNet-style learners).")
    ] = None,
    dataset: Dataset = "omniglot",
    split: Split = None,
    subset: Annotated[str, typer.Option("--subset", help="Which part of the split to test on.")] = "test",
    episode_file: Annotated[
        Path | None,
        typer.Option("--episode-file", help="Evaluate on the episodes saved in this file."),
    ] = None,
    save_episodes: Annotated[
        Path | None,
        typer.Option("--save-episodes", help="Also save the episodes drawn to this .npz file."),
    ] = None,
    skip_small_classes: Annotated[
        bool,
        typer.Option("--skip-small-classes", help="Leave out classes with fewer than shots+queries items."),
    ] = False,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    image_size: ImageSize = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    progress: Progress = None,
) -> None:
    """Evaluate a few-shot learner on N-way K-shot episodes: accuracy +- 95% CI."""
    from fewshot_cli.models import dataset_transform, load_data, resolve_learner

    from fewshot.device import resolve_device
    from fewshot.evaluation import evaluate

    torch_device = resolve_device(device)
    options = {"model": model, "pretrained": pretrained, "precision": precision}
    if encoder == "clip" and checkpoint is None and dataset == "omniglot":
        from fewshot.errors import FewshotError

        raise FewshotError("--encoder clip needs an image-folder --dataset (a path), not omniglot")
    if checkpoint is None and encoder in SIZED_ENCODERS:
        from fewshot.learners import LEARNERS

        if method is not None:
            LEARNERS.get(method)
        data = load_data(dataset, subset, split, data_dir, image_size, seed)
        learner, meta = resolve_learner(
            method, None, encoder, options, metric, torch_device, tuple(data.data.shape)
        )
    else:
        learner, meta = resolve_learner(method, checkpoint, encoder, options, metric, torch_device)
        trained_on = meta.get("dataset") or {}
        if image_size is None:
            image_size = trained_on.get("image_size")
        if split is None and dataset == "omniglot" and trained_on.get("dataset") == "omniglot":
            split = trained_on.get("split")
        data = load_data(
            dataset, subset, split, data_dir, image_size, seed, transform=dataset_transform(meta, learner)
        )
    if split is None and dataset == "omniglot":
        split = "vinyals"
    result = evaluate(
        learner,
        data,
        ways=ways,
        shots=shots,
        queries=queries,
        episodes=episodes,
        seed=seed,
        device=torch_device,
        episode_file=str(episode_file) if episode_file else None,
        progress=False if as_json else progress,
        skip_small_classes=skip_small_classes,
        save_episodes=str(save_episodes) if save_episodes else None,
    )
    metric_used = getattr(learner, "metric", None)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "accuracy": result.mean,
                    "ci95": result.ci95,
                    "episodes": result.n_episodes,
                    "ways": result.ways,
                    "shots": result.shots,
                    "queries": result.queries,
                    "method": meta["learner"],
                    "encoder": meta.get("encoder"),
                    "metric": metric_used,
                    "checkpoint": None if meta.get("untrained") else str(checkpoint or "shipped"),
                    "dataset": dataset,
                    "split": split,
                    "subset": subset,
                    "seed": None if episode_file else seed,
                    "episode_file": str(episode_file) if episode_file else None,
                    "seconds": result.seconds,
                }
            )
        )
        return
    rate = result.n_episodes / result.seconds if result.seconds > 0 else float("inf")
    source = (
        "untrained" if meta.get("untrained") else (str(checkpoint) if checkpoint else "shipped checkpoint")
    )
    rows = [
        ("method", f"{meta['learner']} ({meta.get('encoder')}{', ' + metric_used if metric_used else ''})"),
        ("model", source),
        ("data", f"{dataset} {split or ''} {subset}".replace("  ", " ")),
        ("task", f"{result.ways}-way {result.shots}-shot, {result.queries} queries per class"),
        (
            "episodes",
            f"{result.n_episodes}" + (f" from {episode_file}" if episode_file else f" (seed {seed})"),
        ),
        ("accuracy", f"{100 * result.mean:.2f}% +- {100 * result.ci95:.2f}% (95% CI)"),
        ("time", f"{result.seconds:.2f} s ({rate:.0f} episodes/s)"),
    ]
    typer.echo("\n".join(f"{name:<9} {value}" for name, value in rows))


def register(app: typer.Typer) -> None:
    app.command("eval", cls=Command)(eval_command)
