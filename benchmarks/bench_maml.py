"""Speed of one MAML meta-step: fewshot's functional MAML against learn2learn's `MAML` wrapper.

Both run in ONE process, on the same Conv-4 (+ linear head) weights and the same tasks,
interleaved round by round so that background load hits both alike; the script reports the
median seconds per meta-step and the ratio learn2learn / fewshot (> 1: fewshot is faster).

learn2learn 0.2.0 no longer installs on Python 3.11 (its generated Cython sources are stale),
so the script builds it itself in a virtual environment outside the repository
(``$FEWSHOT_BENCH_DIR``, default ``~/.cache/fewshot/bench``): ``pip download --no-binary :all:
--no-deps learn2learn==0.2.0``, ``cython -3`` on its three ``.pyx`` files, ``pip install
--no-build-isolation --no-deps .`` plus the few packages its import needs (requests, gym). That
environment sees this project's environment through a ``.pth`` file, so torch (and fewshot) are
the very same installation on both sides. The script then re-runs itself inside it.

    python benchmarks/bench_maml.py                  # 5-way 1-shot, 15 queries, meta-batch 32
    python benchmarks/bench_maml.py --reps 3 --cases second_order
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

BENCH_DIR = Path(os.environ.get("FEWSHOT_BENCH_DIR", Path.home() / ".cache" / "fewshot" / "bench"))
L2L_VENV = BENCH_DIR / "l2l-venv"
L2L_SOURCES = ("task_dataset", "meta_dataset", "transforms")


# -- the learn2learn environment --------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def ensure_l2l_venv() -> Path:
    """Build (once) a venv with learn2learn 0.2.0 that shares this environment's torch."""
    python = L2L_VENV / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([python, "-c", "import learn2learn"], capture_output=True).returncode == 0
    ):
        return python
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(L2L_VENV)])
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # Share this environment's torch and fewshot (and their dependencies): same build on both sides.
    (site / "zz_fewshot_env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    )
    pip = [str(python), "-m", "pip", "install", "-q"]
    _run([*pip, "cython", "wheel", "setuptools", "requests", "gym"])
    src = BENCH_DIR / "src"
    src.mkdir(exist_ok=True)
    _run(
        [
            str(python),
            "-m",
            "pip",
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            "learn2learn==0.2.0",
            "-d",
            str(src),
        ]
    )
    _run(["tar", "xzf", "learn2learn-0.2.0.tar.gz"], cwd=src)
    tree = src / "learn2learn-0.2.0"
    for name in L2L_SOURCES:  # regenerate the stale C sources for today's Python
        _run([str(L2L_VENV / "bin" / "cython"), "-3", f"learn2learn/data/{name}.pyx"], cwd=tree)
    _run([*pip, "--no-build-isolation", "--no-deps", "."], cwd=tree)
    return python


# -- the measurement (runs inside the learn2learn environment) -------------------------------


def make_tasks(count: int, ways: int, shots: int, queries: int, side: int, seed: int):
    """Random binary 'characters' (Omniglot-like 28x28 images), labels 0..N-1 grouped by class."""
    import torch

    from fewshot.sampling import Episode

    g = torch.Generator().manual_seed(seed)
    tasks = []
    for _ in range(count):
        protos = (torch.rand(ways, 1, side, side, generator=g) > 0.5).float()
        noise = lambda n: (torch.rand(n, 1, side, side, generator=g) < 0.1).float()  # noqa: E731
        sx = (protos.repeat_interleave(shots, 0) + noise(ways * shots)) % 2
        qx = (protos.repeat_interleave(queries, 0) + noise(ways * queries)) % 2
        tasks.append(
            Episode(
                sx,
                torch.arange(ways).repeat_interleave(shots),
                qx,
                torch.arange(ways).repeat_interleave(queries),
                torch.arange(ways),
            )
        )
    return tasks


def l2l_step_fn(net, tasks, inner_lr: float, first_order: bool, head_only: bool):
    """learn2learn's documented recipe: clone, adapt, per-task backward of the query loss."""
    import learn2learn as l2l
    import torch.nn.functional as F

    if head_only:  # ANIL as in learn2learn's example: the body is shared, MAML wraps the head
        body, head = net[0], l2l.algorithms.MAML(net[1], lr=inner_lr, first_order=first_order)
        params = [*body.parameters(), *head.parameters()]
    else:
        maml = l2l.algorithms.MAML(net, lr=inner_lr, first_order=first_order)
        params = list(maml.parameters())

    def step():
        for p in params:
            p.grad = None
        for t in tasks:
            if head_only:
                learner = head.clone()
                learner.adapt(F.cross_entropy(learner(body(t.support_x)), t.support_y))
                loss = F.cross_entropy(learner(body(t.query_x)), t.query_y)
            else:
                learner = maml.clone()
                learner.adapt(F.cross_entropy(learner(t.support_x), t.support_y))
                loss = F.cross_entropy(learner(t.query_x), t.query_y)
            (loss / len(tasks)).backward()
        return [p.grad for p in params]

    return step


def ours_step_fn(learner, tasks, bf16: bool = False, device: str = "cpu"):
    import contextlib

    import torch

    def autocast():
        kind = torch.device(device).type
        return torch.autocast(kind, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():  # what the training loop runs per meta-step
        learner.zero_grad(set_to_none=True)
        learner.meta_batch_backward(tasks, autocast=autocast)
        return [p.grad for p in learner.meta_parameters().values()]

    return step


def measure(args) -> dict:
    import learn2learn
    import torch

    from fewshot.encoders.conv4 import Conv4
    from fewshot.learners.maml import MAML

    torch.manual_seed(args.seed)
    tasks = make_tasks(args.meta_batch, args.ways, args.shots, args.queries, args.image_size, args.seed)
    tasks = [t.to(args.device) for t in tasks]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else lambda: None
    base = MAML(
        Conv4(in_channels=1, image_size=args.image_size),
        ways=args.ways,
        inner_lr=args.inner_lr,
        inner_steps=1,
    ).to(args.device)
    cases = {
        "second_order": {"first_order": False, "head_only": False},
        "first_order": {"first_order": True, "head_only": False},
        "anil": {"first_order": False, "head_only": True},
    }
    results = {}
    for case in args.cases:
        opts = cases[case]
        net = copy.deepcopy(torch.nn.Sequential(base.encoder, base.head))
        contenders = {"learn2learn": l2l_step_fn(net, tasks, args.inner_lr, **opts)}
        for strategy in args.strategies:
            learner = MAML(
                copy.deepcopy(base.encoder),
                ways=args.ways,
                inner_lr=args.inner_lr,
                inner_steps=1,
                strategy=strategy,
                **opts,
            )
            learner.to(args.device).load_state_dict(base.state_dict())
            contenders[f"fewshot {strategy}"] = ours_step_fn(learner, tasks, device=args.device)
            if strategy == "loop" and args.bf16:
                contenders[f"fewshot {strategy} bf16"] = ours_step_fn(learner, tasks, True, args.device)
        # Same model, same tasks: the meta-gradients must agree.
        reference = contenders["learn2learn"]()
        agreement = {}
        for name, fn in contenders.items():
            grads = fn()
            flat_ref = torch.cat([g.flatten() for g in reference])
            flat = torch.cat([g.float().flatten() for g in grads])
            agreement[name] = {
                "max_abs_diff": float((flat - flat_ref).abs().max()),
                "cosine": float(torch.nn.functional.cosine_similarity(flat, flat_ref, dim=0)),
            }
        seconds = {name: [] for name in contenders}
        for _ in range(args.reps):  # interleaved rounds
            for name, fn in contenders.items():
                if name.endswith(("vmap", "grouped")) and len(seconds[name]) >= args.slow_reps:
                    continue
                sync()
                start = time.perf_counter()
                fn()
                sync()
                seconds[name].append(time.perf_counter() - start)
        l2l = statistics.median(seconds["learn2learn"])
        results[case] = {
            name: {
                "median_s": round(statistics.median(s), 4),
                "min_s": round(min(s), 4),
                "runs": len(s),
                "speedup_vs_learn2learn": round(l2l / statistics.median(s), 3),
                **{k: round(v, 7) for k, v in agreement[name].items()},
            }
            for name, s in seconds.items()
        }
        print(json.dumps({case: results[case]}, indent=1), flush=True)
    return {
        "setting": vars(args),
        "torch": torch.__version__,
        "learn2learn": learn2learn.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument(
        "--reps", type=int, default=5, help="timed meta-steps per contender (after one warm-up)"
    )
    parser.add_argument(
        "--slow-reps", type=int, default=2, help="timed steps for the vmap/grouped strategies"
    )
    parser.add_argument("--cases", nargs="+", default=["second_order", "first_order", "anil"])
    parser.add_argument("--strategies", nargs="+", default=["loop", "grouped", "vmap"])
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (benchmarks/gpu_check.sh)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside:
        python = ensure_l2l_venv()
        os.execv(str(python), [str(python), __file__, *sys.argv[1:], "--inside"])
    report = measure(args)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
