"""The Avalanche 0.6.0 side of `bench_continual.py`: the same stream (items, class order,
experiences), the same Conv-4 initial weights, epochs, batch size, SGD (momentum 0.9) and
learning rate, and for replay the same memory (a class-balanced buffer, Avalanche's
``ClassBalancedBuffer``, and as many replayed items per batch as new ones), for naive, EWC
(``ewc_lambda``, separate penalties), LwF (``alpha``, ``temperature``) and replay.

Avalanche is installed on first use in its own virtual environment,
``~/.cache/fewshot/bench/avalanche-0.6.0`` (``pip install --no-deps avalanche-lib==0.6.0`` and
the few packages it imports; torch, numpy and fewshot are read from this interpreter's
site-packages through a ``.pth`` file, so there is one copy of torch), never as a dependency of
fewshot. Avalanche's model is fewshot's Conv-4 followed by its ``IncrementalClassifier`` (an
output per class seen, unseen outputs masked), the counterpart of fewshot's growing heads.
Both sides are timed the same way: training one experience plus testing on every experience.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

VENV = Path.home() / ".cache" / "fewshot" / "bench" / "avalanche-0.6.0"
PACKAGES = ["avalanche-lib==0.6.0", "dill", "gdown", "beautifulsoup4", "soupsieve", "pytorchcv", "psutil"]
WITH_DEPS = ["wandb", "tensorboard", "torchmetrics", "gputil", "qpsolvers"]


def avalanche_python() -> Path:
    """The Avalanche venv's interpreter, created on first use (WITH_DEPS pull only pure-Python
    packages: torch is visible through the .pth file)."""
    import _common

    return _common.peer_python(VENV, PACKAGES, WITH_DEPS)


def run_avalanche(stream, strategy: str, seed: int, args) -> dict:
    """Avalanche's ``strategy`` on `stream` in its venv: the accuracy matrix and time per experience."""
    import torch

    from fewshot.encoders.conv4 import Conv4

    torch.manual_seed(seed)
    encoder = Conv4(in_channels=1, hidden=64, image_size=28)  # the same draw as fewshot's side
    parts = [e.classes for e in stream.experiences]
    cat = lambda key: torch.cat([getattr(e, key).data for e in stream.experiences])  # noqa: E731
    labels = lambda key: torch.cat([getattr(e, key).labels for e in stream.experiences])  # noqa: E731
    spec = {
        "train_x": cat("train"), "train_y": labels("train"), "test_x": cat("test"), "test_y": labels("test"),
        "order": torch.as_tensor([c for p in parts for c in p]),
        "sizes": torch.as_tensor([len(p) for p in parts]),
        "encoder": encoder.state_dict(), "embed_dim": encoder.embed_dim, "seed": seed,
    }  # fmt: skip
    settings = {"strategy": strategy, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
    settings.update(memory=args.memory, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        task, out = Path(tmp, "task.pt"), Path(tmp, "out.json")
        torch.save(spec, task)
        Path(tmp, "settings.json").write_text(json.dumps(settings))
        command = [str(avalanche_python()), __file__, "--worker", str(task), str(out)]
        # fewshot is an editable install: its path comes from this interpreter's import system
        root = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        subprocess.run(command, check=True, env=env)
        return json.loads(out.read_text())


# -- the Avalanche side (runs in the Avalanche venv) --------------------------------------------


def worker(task_file: str, out_file: str) -> None:
    import time

    import torch
    from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
    from avalanche.models import IncrementalClassifier
    from avalanche.training.plugins import EvaluationPlugin

    from fewshot.encoders.conv4 import Conv4

    settings = json.loads(Path(task_file).with_name("settings.json").read_text())
    torch.set_num_threads(settings["threads"])
    spec = torch.load(task_file, weights_only=True)
    torch.manual_seed(spec["seed"])
    encoder = Conv4(in_channels=1, hidden=64, image_size=28)
    encoder.load_state_dict(spec["encoder"])
    model = torch.nn.Sequential(encoder, IncrementalClassifier(spec["embed_dim"], initial_out_features=2))
    bench = class_incremental_benchmark(
        {"train": _Tensors(spec["train_x"], spec["train_y"]),
         "test": _Tensors(spec["test_x"], spec["test_y"])},
        class_order=spec["order"].tolist(), num_classes_per_exp=spec["sizes"].tolist(),
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=0.9)
    strategy = _strategy(settings, model, optimizer, EvaluationPlugin(loggers=[]))
    tests = _test_parts(spec)
    R, seconds = [], []
    for exp in bench.train_stream:
        started = time.perf_counter()
        strategy.train(exp)
        R.append([_accuracy(model, x, y) for x, y in tests])
        seconds.append(time.perf_counter() - started)
    from fewshot.continual import metrics

    result = {"accuracy_matrix": R, "seconds_per_experience": sum(seconds) / len(seconds)}
    result.update(
        average_accuracy=metrics.average_accuracy(R), average_forgetting=metrics.average_forgetting(R)
    )
    Path(out_file).write_text(json.dumps(result))


class _Tensors(torch.utils.data.Dataset):
    """Items and labels with the ``targets`` Avalanche reads."""

    def __init__(self, x, y) -> None:
        self.x, self.y, self.targets = x, y, y.tolist()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def _strategy(settings: dict, model, optimizer, evaluator):
    import torch
    from avalanche.training import EWC, LwF, Naive
    from avalanche.training.plugins import ReplayPlugin
    from avalanche.training.storage_policy import ClassBalancedBuffer

    common = dict(
        criterion=torch.nn.CrossEntropyLoss(), train_mb_size=settings["batch_size"],
        train_epochs=settings["epochs"], eval_mb_size=512, device="cpu", evaluator=evaluator,
    )  # fmt: skip
    name = settings["strategy"]
    if name == "ewc":
        return EWC(model, optimizer, ewc_lambda=100.0, mode="separate", **common)
    if name == "lwf":
        return LwF(model, optimizer, alpha=1.0, temperature=2.0, **common)
    plugins = []
    if name == "replay":
        memory, batch = settings["memory"], settings["batch_size"]
        buffer = ClassBalancedBuffer(max_size=memory, adaptive_size=True)
        plugins.append(ReplayPlugin(memory, batch_size=batch, batch_size_mem=batch, storage_policy=buffer))
    return Naive(model, optimizer, plugins=plugins, **common)


def _test_parts(spec) -> list:
    order, sizes = spec["order"].tolist(), spec["sizes"].tolist()
    parts, start = [], 0
    for n in sizes:
        classes = spec["order"].new_tensor(order[start : start + n])
        mask = (spec["test_y"].unsqueeze(1) == classes).any(1)
        parts.append((spec["test_x"][mask], spec["test_y"][mask]))
        start += n
    return parts


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(xb).argmax(-1) == yb).sum()) for xb, yb in zip(x.split(512), y.split(512), strict=True)
        )
    return correct / max(1, len(y))


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(sys.argv[2], sys.argv[3])
