"""Did pretraining help? Learning and data-efficiency curves on Fashion-MNIST, pretrained
against the same network from scratch, and a case of negative transfer (issue #18).

Cases (``--cases``):

- ``lite0``: EfficientNet-Lite0 (ImageNet weights, ``--image-size`` px inputs, default 64, not
  224: about 30 images/s at 224 px on the development CPU) against EfficientNet-Lite0 with
  random weights;
- ``omniglot-conv4``: the shipped Omniglot ProtoNet Conv-4 (handwritten characters: a source
  far from clothing) against Conv-4 from scratch, at 28 px; the candidate for negative
  transfer at the larger sizes.

Each: `fewshot.workflows.curves.run_curves` (full fine-tuning, AdamW, lr 1e-4 pretrained /
``--scratch-lr`` 1e-3 scratch, head 1e-3, batch 32, ``--epochs``, BatchNorm statistics kept in
pretrained runs (``--no-freeze-batchnorm``: trained), no early stopping, the last
epoch's accuracy on ``--test-per-class`` held-out items per class of the official train part,
``--seeds`` seeds; 95% Student-t intervals). Writes ``<out>-<case>.json`` and ``.png``.

    FEWSHOT_DATA_DIR=/work/shared/data nice -n 10 .venv/bin/python benchmarks/bench_curves.py \\
        --out benchmarks/curves

Full sizes of the issue: ``--sizes 1,2,5,10,20,50,100,all`` (hours on a CPU at 224 px).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _common as common

CASES = {"lite0": "efficientnet-lite0", "omniglot-conv4": "protonet-conv4-omniglot"}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--sizes", default="1,5,20,50")
    p.add_argument("--conv4-sizes", default="5,50,300", help="sizes of the omniglot-conv4 case")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--scratch-lr", type=float, default=1e-3)
    p.add_argument("--test-per-class", type=int, default=30)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument(
        "--freeze-batchnorm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="BatchNorm keeps the pretrained statistics (few labels: see bench_fashion_finetune)",
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="curves", help="prefix of the JSON and PNG files")
    return p.parse_args(argv)


def run(case: str, args):
    from fewshot.workflows.curves import CurvesRequest, run_curves

    out = Path(f"{args.out}-{case}")
    request = CurvesRequest(
        data="fashion-mnist",
        encoder=CASES[case],
        sizes=args.conv4_sizes if case == "omniglot-conv4" else args.sizes,
        seeds=args.seeds,
        epochs=args.epochs,
        freeze_batchnorm=args.freeze_batchnorm,
        scratch_lr=args.scratch_lr,
        test_per_class=args.test_per_class,
        image_size=args.image_size if case == "lite0" else None,
        device="cpu",
        data_dir=args.data_dir,
        out=out.with_suffix(".json"),
        plot=out.with_suffix(".png"),
        progress=False,
    )
    started = time.perf_counter()
    report = run_curves(request)
    return report, round(time.perf_counter() - started, 1)


def main(argv=None) -> int:
    from fewshot_cli.curves import table

    args = parse(argv)
    print(common.machine_line(common.machine()))
    negative = []
    for case in args.cases.split(","):
        report, seconds = run(case, args)
        print(f"\n## {case} ({seconds} s)\n")
        print(table(report))
        negative += [
            (case, s["size"], s["negative_transfer"])
            for s in report["sizes"]
            if s["negative_transfer"]["gap"] > 0
        ]
    print("\nnegative transfer found:" if negative else "\nno negative transfer at these sizes")
    for case, size, gap in negative:
        points = f"{100 * gap['gap']:+.1f} +- {100 * gap['ci95']:.1f} points"
        print(f"  {case}, {size} per class: gap {points}; {gap['verdict']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
