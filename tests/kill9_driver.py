"""Fault-injection driver for tests/test_train_kill9.py: one process, many killed children.

``python kill9_driver.py SPEC.json``. SPEC holds ``workdir`` and ``jobs``: name -> either
``{"argv": [...]}`` (a fewshot command line, ``{out}`` standing for the output) or
``{"library": "train" | "finetune"}`` (`fewshot.training.train` / `fewshot.transfer.finetune`
on tiny synthetic tensors with a tiny Conv-4), and optionally ``points`` (default: all).

For each job the driver runs it once itself, logging every crash point reached
(``<job>/clean/``), then for each point N forks a child that SIGKILLs itself at the N-th
point (``<job>/kill-N/``) and then a plain rerun in the same folder. Forked children are real
processes killed by the kernel, exactly as ``kill -9``; forking from a driver that has already
imported everything saves each of them seconds. One torch thread: no thread pool for fork to
break. Prints a JSON report: per job, the points' names and how each killed child and rerun
ended.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _library(kind: str, out: str) -> int:
    import torch

    from fewshot.data.tensors import LabeledTensors
    from fewshot.encoders.conv4 import Conv4

    def images(classes: int, per_class: int, seed: int) -> LabeledTensors:
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(classes, 1, 16, 16, generator=g).repeat_interleave(per_class, 0)
        x = x + 3.0 * torch.rand(len(x), 1, 16, 16, generator=g)
        labels = torch.arange(classes).repeat_interleave(per_class)
        return LabeledTensors(x, labels, [f"c{i}" for i in range(classes)], {"dataset": "synthetic"})

    torch.manual_seed(0)
    encoder = Conv4(in_channels=1, hidden=4, image_size=16)
    if kind == "train":
        from fewshot.learners.protonet import ProtoNet
        from fewshot.training import TrainConfig, train

        config = TrainConfig(ways=3, shots=1, queries=2, steps=8, val_every=2, val_ways=3, val_queries=2)
        config.val_episodes, config.lr_step, config.device = 2, 3, "cpu"
        train(ProtoNet(encoder), images(6, 4, 0), out, config, images(3, 4, 1), progress=False)
    else:
        from fewshot.transfer.finetune import FinetuneConfig, finetune

        # class c: a bright square at a class-specific corner; it improves at epochs 1, 3 and 5
        g = torch.Generator().manual_seed(2)
        x, labels = 0.6 * torch.rand(40, 1, 16, 16, generator=g), torch.arange(4).repeat_interleave(10)
        for i, c in enumerate(labels.tolist()):
            r, col = divmod(c, 2)
            x[i, 0, 2 + 8 * r : 6 + 8 * r, 2 + 8 * col : 6 + 8 * col] += 0.5
        data = LabeledTensors(x, labels, [f"c{i}" for i in range(4)], {"dataset": "squares"})
        config = FinetuneConfig(epochs=6, batch_size=8, lr=1e-2, head_lr=1e-2, patience=0, device="cpu")
        config.head_init = "random"
        torch.manual_seed(0)
        finetune(Conv4(in_channels=1, hidden=8, image_size=16), data, config, out=out, progress=False)
    return 0


def _invoke(job: dict, out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    os.chdir(out.parent)  # a relative output path: every run's files name the same path
    if "library" in job:
        return _library(job["library"], out.name)
    from fewshot_cli.app import app

    return app([a.replace("{out}", out.name) for a in job["argv"]], standalone_mode=False) or 0


def _child(job: dict, out: Path, crash_at: int) -> int:
    pid = os.fork()
    if pid == 0:  # the child: run the job, never return into the driver
        code = 1
        try:
            import fewshot.faults as faults

            faults._AT, faults._LOG, faults._count = crash_at, None, 0
            code = _invoke(job, out)
        except BaseException:  # noqa: BLE001 - any failure is the child's exit code
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(code))
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _clean(job: dict, out: Path, log: Path) -> int:
    import fewshot.faults as faults

    home = os.getcwd()
    faults._AT, faults._LOG, faults._count = 0, str(log), 0
    try:
        return _invoke(job, out)
    finally:
        faults._LOG = None
        os.chdir(home)


def main(spec_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    report = {}
    for name, job in spec["jobs"].items():
        work = Path(spec["workdir"]) / name
        log = work / "points.log"
        clean = _clean(job, work / "clean" / "m.safetensors", log)
        names = [line.split("\t")[1] for line in log.read_text().splitlines()]
        runs = {}
        for n in job.get("points") or range(1, len(names) + 1):
            out = work / f"kill-{n}" / "m.safetensors"
            runs[str(n)] = [_child(job, out, n), _child(job, out, 0)]
        report[name] = {"clean": clean, "names": names, "runs": runs}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
