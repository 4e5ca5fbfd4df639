"""What the benchmarks share: the machine record, class-stratified samples, the JSON writer,
Markdown tables, a bar plot and the peer libraries' virtual environments. Imported by the
``benchmarks/bench_*.py`` scripts (run as scripts, so this folder is on ``sys.path``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.cpu_layout import cpu_info

DATA_HINT = "FEWSHOT_DATA_DIR=/work/shared/data (a folder holding fashion-mnist/)"


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU, cores, torch and its threads, Python, OS, date."""
    import torch

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **cpu_info(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One line for the top of a report."""
    vector = ",".join(info["cpu_vector_flags"]) or "none listed"
    return (
        f"{info['date']}; {info['cpu_model']} ({info['cpus']} CPUs; {vector}); torch {info['torch']}, "
        f"{info['torch_threads']} threads; python {info['python']}"
        + (f"; GPU {info['cuda']}" if info.get("cuda") else "")
    )


def per_class_sample(labels, per_class: int, seed: int, exclude=None) -> np.ndarray:
    """Sorted indices of ``per_class`` items of every class, drawn with ``seed`` (all of a class
    that has fewer); ``exclude``: indices never drawn (a disjoint second sample)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    banned = np.zeros(labels.shape[0], dtype=bool)
    if exclude is not None:
        banned[np.asarray(exclude, dtype=np.int64)] = True
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero((labels == c) & ~banned)
        picked.append(rng.permutation(rows)[:per_class])
    return np.sort(np.concatenate(picked))


def subset(data, index):
    """The items ``index`` of a `LabeledTensors` (same classes and info)."""
    import torch

    from fewshot.data.tensors import LabeledTensors

    idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
    return LabeledTensors(data.data[idx], data.labels[idx], data.class_names, dict(data.info))


def limit_test(data, limit: int | None, seed: int = 0):
    """A class-stratified subset of about ``limit`` items (``limit // classes`` per class), or
    ``data`` unchanged when ``limit`` is None or not smaller."""
    if not limit or limit >= len(data):
        return data
    n_classes = len(data.class_names)
    return subset(data, per_class_sample(data.labels.numpy(), max(1, limit // n_classes), seed))


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table; numbers right-aligned."""

    def right(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    align = [right(rows[0][i]) if rows else False for i in range(len(headers))]
    line = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    line.append(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a else ("-" * (w + 2)) for w, a in zip(widths, align, strict=True)
        )
        + "|"
    )
    for row in cells:
        padded = [v.rjust(w) if a else v.ljust(w) for v, w, a in zip(row, widths, align, strict=True)]
        line.append("| " + " | ".join(padded) + " |")
    return "\n".join(line)


def write_json(path: str | os.PathLike[str], results: dict[str, Any]) -> Path:
    """Atomically, indented, numpy scalars converted."""
    from fewshot.fileio import atomic_write_bytes

    text = json.dumps(results, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    return atomic_write_bytes(path, (text + "\n").encode())


def write_table(path: str | os.PathLike[str], args: Any, header: list[str], rows: list[list]) -> Path:
    """A benchmark's table as JSON beside its command-line settings (``args``, as strings)."""
    settings = {k: str(v) for k, v in vars(args).items()}
    return write_json(path, {"settings": settings, "header": header, "rows": rows})


def save_figure(fig, path: str | os.PathLike[str]) -> Path:
    """A matplotlib figure as PNG, atomically; the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    from fewshot.fileio import atomic_write_bytes

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def pyplot():
    """matplotlib's pyplot on the Agg backend (headless), or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[dev]'): no plot")
        return None
    return plt


def peer_python(venv: Path, packages: list[str], with_deps: list[str] = ()) -> Path:
    """The interpreter of a peer library's own virtual environment, created on first use:
    ``packages`` installed without their dependencies (torch, numpy and friends come from this
    interpreter's site-packages through a ``.pth`` file, so there is no second copy of torch),
    then ``with_deps`` (pure-Python packages) with theirs. The peer is never a dependency."""
    import sysconfig

    python = venv / "bin" / "python"
    if python.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "fewshot_bench_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *packages], check=True)
    if with_deps:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *with_deps], check=True)
    return python
