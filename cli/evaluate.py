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
    ImageSize,
    Precision,
    Progress,
    Seed,
    Split,
)

SIZED_ENCODERS = ("conv4", "resnet12", "identity")  # built to the data's shape
DEFAULTS = {"ways": 5, "shots": 1, "queries": 15, "episodes": 1000}
# Default None (filled in from DEFAULTS): an episode file imposes its own settings, and only
# an option given on the command line can contradict it.
FileWays = Annotated[
    int | None, typer.Option("--ways", "-n", min=2, help="Classes per episode (N) [default: 5].")
]
FileShots = Annotated[
    int | None, typer.Option("--shots", "-k", min=1, help="Support images per class (K) [default: 1].")
]
FileQueries = Annotated[
    int | None, typer.Option("--queries", "-q", min=1, help="Query images per class [default: 15].")
]
FileEpisodes = Annotated[
    int | None, typer.Option("--episodes", min=1, help="Number of episodes [default: 1000].")
]


def eval_command(
    ways: FileWays = None,
    shots: FileShots = None,
    queries: FileQueries = None,
    episodes: FileEpisodes = None,
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
    from fewshot.errors import FewshotError
    from fewshot.evaluation import evaluate

    task = episode_settings(episode_file, ways=ways, shots=shots, queries=queries, episodes=episodes)
    if encoder is None and checkpoint is None and is_embedding_file(dataset):
        encoder = "identity"  # an embedding file holds features: nothing to embed
    torch_device = resolve_device(device)
    options = {"model": model, "pretrained": pretrained, "precision": precision}
    if encoder == "clip" and checkpoint is None and dataset == "omniglot":
        raise FewshotError("--encoder clip needs an image-folder --dataset (a path), not omniglot")
    if checkpoint is None and encoder in SIZED_ENCODERS:
        from fewshot.learners import LEARNERS

        if method is not None:
            LEARNERS.get(method)
        data = load_data(dataset, subset, split, data_dir, image_size, seed)
        learner, meta = resolve_learner(
            method, None, encoder, options, metric, torch_device, tuple(data.data.shape), seed=seed
        )
    else:
        learner, meta = resolve_learner(method, checkpoint, encoder, options, metric, torch_device, seed=seed)
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
        **task,
        seed=seed,
        device=torch_device,
        episode_file=str(episode_file) if episode_file else None,
        progress=False if as_json else progress,
        skip_small_classes=skip_small_classes,
        save_episodes=str(save_episodes) if save_episodes else None,
    )
    metric_used = getattr(learner, "metric", None)
    source = model_source(meta, checkpoint)
    if as_json:
        report = {
            "accuracy": result.mean,
            "ci95": result.ci95,
            "episodes": result.n_episodes,
            "ways": result.ways,
            "shots": result.shots,
            "queries": result.queries,
            "method": meta["learner"],
            "encoder": meta.get("encoder"),
            "metric": metric_used,
            "checkpoint": str(checkpoint or "shipped") if meta.get("from_checkpoint") else None,
            "model": source,
            "dataset": dataset,
            "split": split,
            "subset": subset,
            "seed": None if episode_file else seed,
            "episode_file": str(episode_file) if episode_file else None,
            "seconds": result.seconds,
        }
        typer.echo(json_line(report))
        return
    rows = [
        ("method", f"{meta['learner']} ({meta.get('encoder')}{', ' + metric_used if metric_used else ''})"),
        ("model", source),
        ("data", f"{dataset} {split or ''} {subset}".replace("  ", " ")),
        ("task", f"{result.ways}-way {result.shots}-shot, {result.queries} queries per class"),
        (
            "episodes",
            f"{result.n_episodes}"
            + (f" from {episode_file} (its settings)" if episode_file else f" (seed {seed})"),
        ),
        ("accuracy", f"{100 * result.mean:.2f}% +- {100 * result.ci95:.2f}% (95% CI)"),
        ("time", f"{result.seconds:.2f} s ({episode_rate(result.n_episodes, result.seconds)} episodes/s)"),
    ]
    typer.echo("\n".join(f"{name:<9} {value}" for name, value in rows))


def episode_settings(episode_file: Path | None, **given: int | None) -> dict[str, int]:
    """ways/shots/queries/episodes: the defaults, or with an episode file its own settings, after
    checking that no option given on the command line contradicts them (one line, exit 2)."""
    if episode_file is None:
        return {k: DEFAULTS[k] if v is None else v for k, v in given.items()}
    from fewshot.errors import FewshotError
    from fewshot.sampling import read_episode_settings

    imposed = read_episode_settings(episode_file)
    clash = [f"--{k} {v}" for k, v in given.items() if v is not None and v != imposed[k]]
    if clash:
        verb = "contradicts" if len(clash) == 1 else "contradict"
        raise FewshotError(
            f"{' and '.join(clash)} {verb} {episode_file}, which holds {imposed['episodes']} "
            f"{imposed['ways']}-way {imposed['shots']}-shot episodes with {imposed['queries']} "
            "queries per class: leave the option out or draw new episodes (without --episode-file)"
        )
    return {k: imposed[k] for k in given}


def is_embedding_file(dataset: str) -> bool:
    from fewshot.data.loading import EMBEDDING_SUFFIXES

    return dataset != "omniglot" and Path(dataset).suffix.lower() in EMBEDDING_SUFFIXES


def model_source(meta: dict, checkpoint: Path | None) -> str:
    """The table's "model" line: which weights were evaluated."""
    if meta.get("from_checkpoint"):
        return str(checkpoint) if checkpoint else "shipped checkpoint"
    return meta.get("weights") or "untrained"


def episode_rate(n_episodes: int, seconds: float) -> str:
    """Episodes per second, with two significant digits below 10 (a slow CLIP is not "0")."""
    if seconds <= 0:
        return "-"
    rate = n_episodes / seconds
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"


def json_line(report: dict) -> str:
    """Valid JSON always: a NaN or infinite number becomes null."""
    from fewshot.runs import json_safe

    return json.dumps(json_safe(report), allow_nan=False)


def register(app: typer.Typer) -> None:
    app.command("eval", cls=Command)(eval_command)
