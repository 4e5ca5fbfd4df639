"""`fewshot eval`: N-way K-shot evaluation with a 95% confidence interval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from fewshot_cli.common import (
    ClipModel,
    ClipPretrained,
    DataDir,
    Dataset,
    Device,
    ImageSize,
    Precision,
    Queries,
    Seed,
    Shots,
    Split,
    Ways,
)


def eval_command(
    ways: Ways = 5,
    shots: Shots = 1,
    queries: Queries = 15,
    episodes: Annotated[int, typer.Option("--episodes", help="Number of test episodes.")] = 1000,
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="Learner (default: the checkpoint's).")
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
            help="Evaluate a frozen pretrained encoder instead of a checkpoint: 'clip' (with --model, "
            "--pretrained) on an image-folder --dataset.",
        ),
    ] = None,
    model: ClipModel = "ViT-B-32",
    pretrained: ClipPretrained = "default",
    precision: Precision = "auto",
    dataset: Dataset = "omniglot",
    split: Split = None,
    subset: Annotated[str, typer.Option("--subset", help="Which part of the split to test on.")] = "test",
    episode_file: Annotated[
        Path | None,
        typer.Option("--episode-file", help="Evaluate on the episodes saved in this file."),
    ] = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    image_size: ImageSize = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Evaluate a few-shot learner on N-way K-shot episodes: accuracy +- 95% CI."""
    from fewshot.checkpoints import load_learner
    from fewshot.data.loading import load_dataset
    from fewshot.device import resolve_device
    from fewshot.evaluation import evaluate
    from fewshot.models import DEFAULT_CHECKPOINT

    torch_device = resolve_device(device)
    transform = None
    if encoder is not None:
        learner, meta, transform = _pretrained_learner(
            encoder, method, checkpoint, dataset, model, pretrained, str(torch_device), precision
        )
    else:
        learner, meta = load_learner(checkpoint or DEFAULT_CHECKPOINT, torch_device)
    if method is not None and method != meta["learner"]:
        from fewshot.errors import FewshotError

        raise FewshotError(f"--method {method} but the checkpoint holds a {meta['learner']} model")
    trained_on = meta.get("dataset", {})
    if image_size is None:
        image_size = trained_on.get("image_size")
    if split is None and dataset == "omniglot":
        split = trained_on.get("split", "vinyals")
    if transform is not None:
        data = load_dataset(dataset, subset, split, data_dir, image_size, seed, transform=transform)
    else:
        data = load_dataset(dataset, subset, split, data_dir, image_size, seed)
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
        progress=progress and not as_json,
    )
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
                    "encoder": meta["encoder"],
                    "dataset": dataset,
                    "split": split,
                    "seconds": result.seconds,
                }
            )
        )
        return
    typer.echo(
        f"{meta['learner']} ({meta['encoder']}) on {dataset} {split or ''} {subset}\n"
        f"{result.ways}-way {result.shots}-shot, {result.queries} queries/class, "
        f"{result.n_episodes} episodes\n"
        f"accuracy: {100 * result.mean:.2f}% +- {100 * result.ci95:.2f}% (95% CI)   "
        f"time: {result.seconds:.1f} s"
    )


def _pretrained_learner(encoder, method, checkpoint, dataset, model, pretrained, device, precision):
    """A learner around a frozen pretrained encoder, its metadata and the image transform it needs."""
    from fewshot.errors import FewshotError
    from fewshot.learners import LEARNERS

    if checkpoint is not None:
        raise FewshotError("give either --checkpoint or --encoder, not both")
    if encoder != "clip":
        raise FewshotError(f"--encoder {encoder!r}: only 'clip' is a pretrained encoder; train others first")
    if dataset == "omniglot":
        raise FewshotError("--encoder clip needs an image-folder --dataset (a path), not omniglot")
    from fewshot_cli.common import clip_encoder

    method = method or "protonet"
    factory = LEARNERS.get(method)
    clip = clip_encoder(model, pretrained, device, precision)
    learner = (
        factory(clip, metric="cosine", scale=clip.logit_scale) if method == "protonet" else factory(clip)
    )
    meta = {"learner": method, "encoder": f"clip {clip.describe()}"}
    return learner.eval(), meta, clip.preprocess


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
