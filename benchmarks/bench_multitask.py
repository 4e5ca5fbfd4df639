"""Multi-task learning (issue #17): one shared Conv-4 with a head per task, trained on
Fashion-MNIST, the UCI digits and an Omniglot subset at once, against one Conv-4 per task
(the baseline: each model `--steps` steps of one batch of its own task, so the baseline sees
as many batches in all as the shared model); per-task test accuracy and total training time,
for each sampling x weighting setting asked for.

Runs `fewshot multitask` (`fewshot.workflows.multitask.run_multitask`) once per setting, the
baseline with the first setting only (it does not depend on sampling or weighting). Items are
28 px grey; the digits are upsampled from 8 px.

    FEWSHOT_DATA_DIR=/work/shared/data python benchmarks/bench_multitask.py \\
        --per-class 500 --steps 1500 --settings uniform:fixed,proportional:fixed,uniform:uncertainty
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, machine_line, markdown_table, write_json


def run_setting(args, sampling: str, weighting: str, baseline: bool, out: Path) -> dict:
    from fewshot.workflows.multitask import MultiTaskRequest, run_multitask

    request = MultiTaskRequest(
        data=args.data, encoder="conv4", steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        sampling=sampling, weighting=weighting, eval_every=args.steps,
        baseline_steps=None if baseline else 0, max_classes=args.omniglot_classes,
        max_per_class=args.per_class, max_test_per_class=args.test_per_class, image_size=28,
        seed=args.seed, device="cpu", out=out, resume=False, progress=args.progress,
    )  # fmt: skip
    started = time.perf_counter()
    report = run_multitask(request)
    report["wall_seconds"] = time.perf_counter() - started
    return report


def rows_of(name: str, report: dict, with_single: bool) -> list[list]:
    rows = []
    for t in report["tasks"]:
        row = [name, Path(t["name"]).name, t["classes"], t["train_items"], round(t["shared_accuracy"], 4)]
        row += [round(t["single_accuracy"], 4) if with_single else "-", t["batches"], round(t["weight"], 3)]
        rows.append(row)
    secs = report["shared"]["seconds"]
    single = report["single"]["seconds"] if with_single else None
    mean = report["shared"]["mean_accuracy"]
    single_mean = round(report["single"]["mean_accuracy"], 4) if with_single else "-"
    rows.append([name, "**mean**", "", "", round(mean, 4), single_mean, "", ""])
    rows.append([name, "training s", "", "", round(secs, 1), round(single, 1) if single else "-", "", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist,digits,omniglot")
    parser.add_argument("--settings", default="uniform:fixed,proportional:fixed,uniform:uncertainty")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--per-class", type=int, default=500, help="Training items per class, at most.")
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--omniglot-classes", type=int, default=20, help="Classes per task, at most.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default="benchmarks/multitask.json")
    parser.add_argument("--plot", default="benchmarks/multitask.png", help="The first setting's bar chart.")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    info = machine()
    print(machine_line(info), flush=True)
    results, rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-multitask-") as work:
        for k, setting in enumerate(args.settings.split(",")):
            sampling, weighting = setting.split(":")
            out = Path(work) / f"run{k}"
            report = run_setting(args, sampling, weighting, k == 0, out)
            if k == 0 and args.plot:
                Path(args.plot).write_bytes((out / "accuracy.png").read_bytes())
            results.append({"sampling": sampling, "weighting": weighting, **report})
            rows += rows_of(setting, report, k == 0)
            print(
                json.dumps({"setting": setting, "shared": report["shared"], "single": report["single"]}),
                flush=True,
            )
    headers = [
        "sampling:weighting",
        "task",
        "classes",
        "train",
        "shared acc",
        "single acc",
        "batches",
        "weight",
    ]
    print(markdown_table(headers, rows))
    write_json(args.out, {"machine": info, "settings": vars(args), "results": results})


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
