"""`fewshot continual`: learn a stream of experiences (new classes or domains) one by one."""

from __future__ import annotations

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
    Seed,
    Split,
    echo_report,
    request_settings,
)
from fewshot_cli.train import positive


def strategy_names() -> list[str]:
    from fewshot.continual import STRATEGIES

    return STRATEGIES.names()


Data = Annotated[
    str,
    typer.Option(
        "--data",
        help="A named data set (fashion-mnist, omniglot, digits), a folder of class subfolders, or "
        "(--scenario domain-il without --shifts) a folder of domain folders of class subfolders.",
    ),
]
Scenario = Annotated[
    str,
    typer.Option(
        "--scenario",
        help="class-il: new classes, no task id at test time; task-il: the task id is known at test "
        "time; domain-il: the same classes in new domains.",
    ),
]
Tasks = Annotated[
    int | None,
    typer.Option("--tasks", min=1, help="Experiences (--split-by group: the first N groups; default all)."),
]
Strategy = Annotated[str, typer.Option("--strategy", "-s", help=f"One of: {', '.join(strategy_names())}.")]
Encoder = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        "-e",
        help="An encoder name (conv4: from scratch; efficientnet-lite0: "
        "ImageNet weights) or a fewshot checkpoint (its encoder).",
    ),
]
SplitBy = Annotated[
    str, typer.Option("--split-by", help="classes (seeded, or --class-order) or group (Omniglot: alphabets).")
]
ClassOrder = Annotated[
    str | None, typer.Option("--class-order", help="Class ids in stream order, comma-separated (all once).")
]
Shifts = Annotated[
    str | None,
    typer.Option(
        "--shifts", help="domain-il: one domain per shift, e.g. none,rotation,blur-contrast,inversion."
    ),
]
TestFraction = Annotated[
    float,
    typer.Option("--test-fraction", help="Items per class held out for testing (sets without a test part)."),
]
MaxPerClass = Annotated[
    int | None, typer.Option("--max-per-class", min=1, help="Training items per class, at most.")
]
MaxTest = Annotated[
    int | None, typer.Option("--max-test-per-class", min=1, help="Test items per class, at most.")
]
Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Passes over each experience.")]
Lr = Annotated[float, typer.Option("--lr", callback=positive, help="Learning rate.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Items per step (replay adds as many).")]
Optimizer = Annotated[str, typer.Option("--optimizer", help="sgd (momentum 0.9) or adam.")]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        help="Training forward passes: auto (bfloat16 autocast on CPU where a one-time timing "
        "check finds it faster, else float32), fp32 or bf16. Evaluation is float32.",
    ),
]
Memory = Annotated[
    int | None, typer.Option("--memory", min=1, help="replay, gdumb: items kept [default: 200].")
]
Buffer = Annotated[
    str | None, typer.Option("--buffer", help="replay: class-balanced (default) or reservoir.")
]
Ace = Annotated[
    bool | None, typer.Option("--ace/--no-ace", help="replay: ER-ACE's asymmetric loss.", show_default=False)
]
Augment = Annotated[
    str | None,
    typer.Option(
        "--augment", help="replay: none (default), shift or shift-flip: random copies of replayed images."
    ),
]
Distill = Annotated[
    float | None,
    typer.Option(
        "--distill", min=0, help="replay: weight of the logit-matching loss on replayed items (0: off)."
    ),
]
Rebalance = Annotated[
    int | None,
    typer.Option(
        "--rebalance", min=0, help="replay: epochs re-fitting the heads on the memory after each experience."
    ),
]
ReplayRatio = Annotated[
    int | None,
    typer.Option("--replay-ratio", min=1, help="replay: replayed items per current item [default: 1]."),
]
EwcLambda = Annotated[
    float | None, typer.Option("--ewc-lambda", min=0, help="ewc: penalty weight [default: 100].")
]
Online = Annotated[
    bool | None, typer.Option("--online/--no-online", help="ewc: online EWC.", show_default=False)
]
Decay = Annotated[float | None, typer.Option("--decay", min=0, help="ewc (online), mas: importance decay.")]
MasLambda = Annotated[
    float | None, typer.Option("--mas-lambda", min=0, help="mas: penalty weight [default: 1].")
]
Alpha = Annotated[float | None, typer.Option("--alpha", min=0, help="lwf: distillation weight [default: 1].")]
Temperature = Annotated[
    float | None, typer.Option("--temperature", callback=positive, help="lwf: temperature.")
]
Scale = Annotated[float | None, typer.Option("--scale", callback=positive, help="simplecil: cosine scale.")]
Subset = Annotated[
    str | None, typer.Option("--subset", help="Which part of the data set (Omniglot: e.g. background).")
]
Out = Annotated[
    Path, typer.Option("--out", "-o", help="The final model (.safetensors), for fewshot predict.")
]
Plot = Annotated[bool, typer.Option("--plot/--no-plot", help="Write <out>.png: accuracy per task over time.")]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--restart", help="Resume a killed run at --out (same settings); --restart starts over."
    ),
]


def continual_command(
    ctx: typer.Context,
    data: Data,
    scenario: Scenario = "class-il",
    tasks: Tasks = 5,
    strategy: Strategy = "replay",
    encoder: Encoder = "conv4",
    split_by: SplitBy = "classes",
    class_order: ClassOrder = None,
    shifts: Shifts = None,
    test_fraction: TestFraction = 0.2,
    max_per_class: MaxPerClass = None,
    max_test_per_class: MaxTest = None,
    epochs: Epochs = 1,
    lr: Lr = 0.01,
    batch_size: BatchSize = 32,
    optimizer: Optimizer = "sgd",
    precision: Precision = "auto",
    memory: Memory = None,
    buffer: Buffer = None,
    ace: Ace = None,
    augment: Augment = None,
    distill: Distill = None,
    rebalance: Rebalance = None,
    replay_ratio: ReplayRatio = None,
    ewc_lambda: EwcLambda = None,
    online: Online = None,
    decay: Decay = None,
    mas_lambda: MasLambda = None,
    alpha: Alpha = None,
    temperature: Temperature = None,
    scale: Scale = None,
    split: Split = None,
    subset: Subset = None,
    image_size: ImageSize = None,
    seed: Seed = 0,
    device: Device = "auto",
    data_dir: DataDir = None,
    out: Out = Path("runs/continual.safetensors"),
    plot: Plot = True,
    resume: Resume = True,
    progress: Progress = None,
    as_json: AsJson = False,
) -> None:
    """Train a continual-learning strategy on a stream; print and save the accuracy matrix."""
    from fewshot.workflows.continual import ContinualRequest, run_continual

    report = run_continual(ContinualRequest(**request_settings(ctx)))
    echo_report(report, as_json, summary)


def summary(r: dict) -> str:
    """The accuracy matrix as a table, then the metrics and the files written."""
    R, names = r["accuracy_matrix"], [e["name"] for e in r["experiences"]]
    width = max(8, *(len(n) for n in names))
    bf16 = " (trained in bf16 autocast)" if r.get("precision") == "bf16" else ""
    head = f"{r['strategy']} on {r['encoder']}, {r['scenario']}{bf16}"
    lines = [f"{head}: accuracy after each experience (rows)"]
    lines.append(" " * (width + 2) + " ".join(f"{j + 1:>6}" for j in range(len(names))))
    for i, row in enumerate(R):
        lines.append(f"{names[i]:<{width}}  " + " ".join(f"{v:6.3f}" for v in row))
    m = r["metrics"]
    text = f"average accuracy {m['average_accuracy']:.4f}, forgetting {m['average_forgetting']:.4f}, "
    text += f"backward transfer {m['backward_transfer']:+.4f}"
    if "forward_transfer" in m:
        text += f", forward transfer {m['forward_transfer']:+.4f}"
    lines.append(text)
    lines.append(
        f"model: {r['checkpoint']}; matrix: {r['report']}" + (f"; plot: {r['plot']}" if r["plot"] else "")
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("continual", cls=Command)(continual_command)
