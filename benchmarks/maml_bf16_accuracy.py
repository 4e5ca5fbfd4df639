"""Does bf16 autocast on a CPU keep a MAML checkpoint's accuracy? Same episodes, fp32 vs bf16.

python benchmarks/maml_bf16_accuracy.py runs/maml.safetensors --ways 5 --episodes 200
"""

from __future__ import annotations

import argparse
import json

import torch

from fewshot.checkpoints import load_learner
from fewshot.data.loading import load_dataset
from fewshot.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    learner, meta = load_learner(args.checkpoint)
    data = load_dataset("omniglot", "test", meta["dataset"].get("split", "vinyals"), None, 28)
    out = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        ctx = torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)
        with ctx:
            result = evaluate(
                learner,
                data,
                args.ways,
                args.shots,
                args.queries,
                args.episodes,
                device="cpu",
                progress=False,
            )
        out[name] = {
            "accuracy": round(result.mean, 4),
            "ci95": round(result.ci95, 4),
            "seconds": result.seconds,
        }
    print(json.dumps({"checkpoint": args.checkpoint, **vars(args), **out}))


if __name__ == "__main__":
    main()
