"""`fewshot eval`: N-way K-shot evaluation with a 95% confidence interval."""

from __future__ import annotations

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
    encoder_names,
    json_line,
    method_names,
)
from fewshot_cli.episode_options import Rotations, SkipSmallGroups, VariableEpisodes, WithinGroup

# Default None (filled in from fewshot.workflows.evaluate.DEFAULTS): an episode file imposes
# its own settings, and only an option given on the command line can contradict it.
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
Method = Annotated[
    str | None,
    typer.Option(
        "--method",
        "-m",
        help="Learner (default: the checkpoint's; another frozen-encoder learner "
        f"reuses the checkpoint's encoder): {', '.join(method_names())}.",
    ),
]
Checkpoint = Annotated[
    Path | None,
    typer.Option("--checkpoint", "-c", help="Trained model (default: the shipped Omniglot ProtoNet)."),
]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help=f"Without --checkpoint: a registry encoder ({', '.join(encoder_names())}): clip "
        "(pretrained; --model, --pretrained; image-folder --dataset) or conv4/resnet12 (untrained baseline).",
    ),
]
Metric = Annotated[
    str | None, typer.Option("--metric", help="euclidean or cosine (ProtoNet-style learners).")
]
Subset = Annotated[str, typer.Option("--subset", help="Which part of the split to test on.")]
EpisodeFile = Annotated[
    Path | None, typer.Option("--episode-file", help="Evaluate on the episodes saved in this file.")
]
SaveEpisodes = Annotated[
    Path | None, typer.Option("--save-episodes", help="Also save the episodes drawn to this .npz file.")
]
SkipSmall = Annotated[
    bool, typer.Option("--skip-small-classes", help="Leave out classes with fewer than shots+queries items.")
]
GroupLevel = Annotated[
    int | None,
    typer.Option(
        "--group-level",
        min=1,
        help="Also report accuracy per group of classes: the first N folders of the class path.",
    ),
]
TableOrJson = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def eval_command(
    ctx: typer.Context,
    ways: FileWays = None,
    shots: FileShots = None,
    queries: FileQueries = None,
    episodes: FileEpisodes = None,
    method: Method = None,
    checkpoint: Checkpoint = None,
    encoder: Encoder = None,
    model: ClipModel = None,
    pretrained: ClipPretrained = None,
    precision: Precision = None,
    metric: Metric = None,
    dataset: Dataset = "omniglot",
    split: Split = None,
    subset: Subset = "test",
    episode_file: EpisodeFile = None,
    save_episodes: SaveEpisodes = None,
    skip_small_classes: SkipSmall = False,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    image_size: ImageSize = None,
    rotations: Rotations = None,
    within_group: WithinGroup = False,
    skip_small_groups: SkipSmallGroups = False,
    variable_episodes: VariableEpisodes = False,
    group_level: GroupLevel = None,
    as_json: TableOrJson = False,
    progress: Progress = None,
) -> None:
    """Evaluate a few-shot learner on N-way K-shot episodes: accuracy +- 95% CI."""
    from fewshot.workflows.evaluate import EvalRequest, run_eval

    settings = {k: v for k, v in ctx.params.items() if k != "as_json"}
    request = EvalRequest(**{**settings, "progress": False if as_json else progress})
    outcome = run_eval(request)
    typer.echo(json_line(_report(request, outcome)) if as_json else _table(request, outcome))


def _report(r, outcome) -> dict:
    result, meta = outcome.result, outcome.meta
    return {
        "accuracy": result.mean,
        "ci95": result.ci95,
        "episodes": result.n_episodes,
        "ways": result.ways,
        "shots": result.shots,
        "queries": result.queries,
        "method": meta["learner"],
        "transductive": bool(getattr(outcome.learner, "transductive", False)),
        "encoder": meta.get("encoder"),
        "metric": getattr(outcome.learner, "metric", None),
        "checkpoint": str(r.checkpoint or "shipped") if meta.get("from_checkpoint") else None,
        "model": model_source(meta, r.checkpoint),
        "dataset": r.dataset,
        "split": outcome.split,
        "subset": r.subset,
        "within_group": result.within_group,
        "variable_episodes": result.variable,
        "seed": None if r.episode_file else r.seed,
        "episode_file": str(r.episode_file) if r.episode_file else None,
        "seconds": result.seconds,
        **result.classes,  # per_class, worst_class (per_group, worst_group with --group-level)
    }


def _table(r, outcome) -> str:
    result, meta = outcome.result, outcome.meta
    metric = getattr(outcome.learner, "metric", None)
    if getattr(outcome.learner, "transductive", False):
        metric = f"{metric + ', ' if metric else ''}transductive: queries scored jointly"
    drawn = f" from {r.episode_file} (its settings)" if r.episode_file else f" (seed {r.seed})"
    rows = [
        ("method", f"{meta['learner']} ({meta.get('encoder')}{', ' + metric if metric else ''})"),
        ("model", model_source(meta, r.checkpoint)),
        ("data", f"{r.dataset} {outcome.split or ''} {r.subset}".replace("  ", " ")),
        ("task", task_line(result)),
        ("episodes", f"{result.n_episodes}{drawn}"),
        ("accuracy", f"{100 * result.mean:.2f}% +- {100 * result.ci95:.2f}% (95% CI)"),
        ("time", f"{result.seconds:.2f} s ({episode_rate(result.n_episodes, result.seconds)} episodes/s)"),
    ]
    from fewshot.class_accuracy import worst_lines

    rows += [("classes", line) for line in worst_lines(result.classes)]
    return "\n".join(f"{name:<9} {value}" for name, value in rows)


def task_line(result) -> str:
    """``5-way 1-shot, 15 queries per class``, saying when episodes vary or stay in one group."""
    task = f"{result.ways}-way {result.shots}-shot"
    if result.variable:
        task = f"variable, up to {task}"
    group = ", classes from one group" if result.within_group else ""
    return f"{task}, {result.queries} queries per class{group}"


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


def register(app: typer.Typer) -> None:
    app.command("eval", cls=Command)(eval_command)
