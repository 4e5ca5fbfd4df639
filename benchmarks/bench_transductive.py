"""Transductive methods (and Matching) side by side with easyfsl 1.5.0, on the SAME frozen
embeddings and the SAME episodes: accuracy with a 95% CI, seconds per episode, and the ratio.

The shipped Conv-4 embeds the Omniglot Vinyals test split once (``FEWSHOT_DATA_DIR`` points at
the data); fewshot's sampler draws the episodes once. fewshot evaluates each method on the
cached embeddings (its batched path, blocks of 256 episodes); easyfsl runs each method's
``process_support_set`` + ``forward`` episode by episode on the same embeddings (an identity
backbone), in its own virtual environment, so easyfsl is never a dependency of the project:
the first run creates ``~/.cache/fewshot/bench/easyfsl-1.5.0`` (``pip install --no-deps
easyfsl==1.5.0 pandas``; torch and numpy are read from this interpreter's site-packages
through a ``.pth`` file).

easyfsl is given fewshot's (the papers') hyperparameters where its constructor takes them
(``--easyfsl-defaults``: its own instead); easyfsl's Matching Networks get identity
full-context encoders (untrained LSTMs would be noise), matching fewshot's Matching without
FCE, though easyfsl leaves the queries unnormalised. Where the two implementations follow
the paper differently (feature normalisation, cosine vs Euclidean heads), the accuracies may
differ; the table says whether they agree within the CIs.

    FEWSHOT_DATA_DIR=/work/shared/data python benchmarks/bench_transductive.py --episodes 1000 \\
        --tasks 5x1,5x5,20x1,20x5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

VENV = Path.home() / ".cache" / "fewshot" / "bench" / "easyfsl-1.5.0"
METHODS = [
    "bd-cspn",
    "tim",
    "pt-map",
    "pt-map-unnormalised",
    "laplacianshot",
    "matching",
    "transductive-finetune",
    "tim-cosine",
    "laplacianshot-easyfsl",
    "transductive-finetune-l2",
]
# benchmark rows that are a fewshot method with other hyperparameters than its defaults: the
# last three follow easyfsl's formulation where it departs from the paper (see each learner)
VARIANTS = {
    "pt-map-unnormalised": ("pt-map", {"normalize": False}),
    "tim-cosine": ("tim", {"metric": "cosine"}),
    "laplacianshot-easyfsl": ("laplacianshot", {"normalize": False, "epsilon": 1.0, "knn": 2}),
    "transductive-finetune-l2": ("transductive-finetune", {"head": "l2"}),
}
# easyfsl's class and the constructor arguments that are fewshot's (the papers') defaults
EASYFSL = {
    "bd-cspn": ("BDCSPN", {}),
    "tim": (
        "TIM",
        dict(
            fine_tuning_steps=1000,
            fine_tuning_lr=1e-4,
            cross_entropy_weight=0.1,
            marginal_entropy_weight=1.0,
            conditional_entropy_weight=0.1,
            temperature=15.0,
        ),
    ),
    "pt-map": ("PTMAP", dict(fine_tuning_steps=20, fine_tuning_lr=0.2, lambda_regularization=10.0)),
    "pt-map-unnormalised": (
        "PTMAP",
        dict(fine_tuning_steps=20, fine_tuning_lr=0.2, lambda_regularization=10.0),
    ),
    "laplacianshot": ("LaplacianShot", dict(inference_steps=20, knn=3, lambda_regularization=0.7)),
    "laplacianshot-easyfsl": ("LaplacianShot", dict(inference_steps=20, knn=3, lambda_regularization=0.7)),
    "matching": ("MatchingNetworks", {}),
    "transductive-finetune": (
        "TransductiveFinetuning",
        dict(fine_tuning_steps=25, fine_tuning_lr=5e-5, temperature=1.0),
    ),
}
EASYFSL["tim-cosine"] = EASYFSL["tim"]
EASYFSL["transductive-finetune-l2"] = EASYFSL["transductive-finetune"]


def ci95(values: np.ndarray) -> float:
    return float(1.96 * values.std() / math.sqrt(values.size))


def easyfsl_python() -> Path:
    """The easyfsl venv's interpreter, created on first use."""
    import _common  # here, not at the top: the easyfsl worker runs this file in its venv

    return _common.peer_python(VENV, ["easyfsl==1.5.0", "pandas", "python-dateutil", "pytz", "tzdata"])


# -- the easyfsl side (runs in the easyfsl venv) ------------------------------------------------


def easyfsl_worker(task_file: str, out_file: str, own_defaults: bool, threads: int) -> None:
    import torch
    from easyfsl import methods
    from torch import nn

    torch.set_num_threads(threads)
    archive = np.load(task_file)
    z = torch.from_numpy(archive["embeddings"])
    support, query = archive["support"], archive["query"]  # (E, N, K), (E, N, Q) item indices
    names = [str(n) for n in archive["methods"]]
    e, n, k = support.shape
    support_y = torch.arange(n).repeat_interleave(k)
    query_y = torch.arange(n).repeat_interleave(query.shape[2])
    results = {}
    for name in names:
        classifier = _easyfsl_classifier(methods, nn, name, z.shape[1], own_defaults).eval()
        accuracies = np.zeros(e)
        with torch.no_grad():  # one episode outside the clock, as on fewshot's side
            classifier.process_support_set(z[support[0].reshape(-1)], support_y)
            classifier(z[query[0].reshape(-1)])
        started = time.perf_counter()
        for i in range(e):
            with torch.no_grad():
                classifier.process_support_set(z[support[i].reshape(-1)], support_y)
                scores = classifier(z[query[i].reshape(-1)])
            accuracies[i] = float((scores.argmax(-1) == query_y).float().mean())
        results[name] = {"per_episode": accuracies.tolist(), "seconds": time.perf_counter() - started}
    Path(out_file).write_text(json.dumps(results))


def _easyfsl_classifier(methods, nn, name: str, dim: int, own_defaults: bool):
    import torch

    class_name, kwargs = EASYFSL[name]
    cls = getattr(methods, class_name)
    if name == "matching":

        class NoSupportContext(nn.Module):  # bidirectional-LSTM stand-in adding nothing
            def forward(self, x):
                return (x.new_zeros(*x.shape[:-1], 2 * x.shape[-1]),)

        class NoQueryContext(nn.Module):  # attention-LSTM cell stand-in adding nothing
            def forward(self, inputs, state):
                return torch.zeros_like(state[0]), state[1]

        return cls(
            nn.Identity(),
            feature_dimension=dim,
            support_encoder=NoSupportContext(),
            query_encoder=NoQueryContext(),
        )
    return cls(nn.Identity(), **({} if own_defaults else kwargs))


# -- the fewshot side --------------------------------------------------------------------------


def fewshot_results(learner_names, data, embeddings, sampler, device):
    from fewshot.build import build_learner
    from fewshot.encoders.base import IdentityEncoder
    from fewshot.evaluation import evaluate
    from fewshot.sampling import EpisodeSampler

    results = {}
    warm_up = EpisodeSampler(data.labels, sampler.ways, sampler.shots, sampler.queries, episodes=2, seed=1)
    for name in learner_names:
        method, options = VARIANTS.get(name, (name, {}))
        learner = build_learner(method, IdentityEncoder(embeddings.shape[1]), options, seed=0)
        # outside the clock, as on easyfsl's side: first-call costs (lazy imports, allocations)
        evaluate(learner, data, sampler=warm_up, device=device, progress=False, embeddings=embeddings)
        started = time.perf_counter()
        result = evaluate(
            learner, data, sampler=sampler, device=device, progress=False, embeddings=embeddings
        )
        seconds = time.perf_counter() - started
        results[name] = {"per_episode": result.per_episode, "seconds": seconds}
    return results


def row(name: str, ours: dict, theirs: dict, episodes: int) -> str:
    a, b = np.asarray(ours["per_episode"]), np.asarray(theirs["per_episode"])
    agree = abs(a.mean() - b.mean()) <= math.hypot(ci95(a), ci95(b))
    ours_s, theirs_s = ours["seconds"] / episodes, theirs["seconds"] / episodes
    cells = [
        name,
        f"{100 * a.mean():.2f} +- {100 * ci95(a):.2f}",
        f"{100 * b.mean():.2f} +- {100 * ci95(b):.2f}",
    ]
    cells += [
        "yes" if agree else "NO",
        f"{ours_s * 1e3:.2f}",
        f"{theirs_s * 1e3:.2f}",
        f"{theirs_s / ours_s:.1f}x",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--tasks", default="5x1,5x5,20x1,20x5", help="ways x shots, comma separated.")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch_threads())
    parser.add_argument("--easyfsl-defaults", action="store_true", help="easyfsl's own hyperparameters.")
    parser.add_argument("--worker", nargs=2, metavar=("TASKS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return easyfsl_worker(*args.worker, args.easyfsl_defaults, args.threads)

    import torch

    from fewshot.build import build_encoder, load_for_encoder
    from fewshot.sampling import EpisodeSampler

    torch.set_num_threads(args.threads)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(names) - set(EASYFSL))
    if unknown:
        parser.error(f"--methods: no easyfsl counterpart for {', '.join(unknown)}")
    python = easyfsl_python()
    source = build_encoder(None, "cpu")  # the shipped Conv-4 ProtoNet
    data = load_for_encoder(source, "omniglot", "test", "vinyals")
    embeddings = source.encoder.encode_batched(data.data).float()
    print(
        f"encoder: {source.description}; Omniglot vinyals test, {len(data)} images, {data.n_classes} classes"
    )
    print(f"torch {torch.__version__}, {args.threads} threads; easyfsl 1.5.0 in {VENV}")
    print(f"easyfsl hyperparameters: {'its own defaults' if args.easyfsl_defaults else 'fewshot defaults'}\n")
    for task in args.tasks.split(","):
        ways, shots = (int(v) for v in task.lower().split("x"))
        sampler = EpisodeSampler(
            data.labels, ways, shots, args.queries, episodes=args.episodes, seed=args.seed
        )
        block = sampler.sample_indices(0, len(sampler))
        ours = fewshot_results(names, data, embeddings, sampler, "cpu")
        with tempfile.TemporaryDirectory(prefix="fewshot-bench-") as scratch:
            tasks, out = Path(scratch, "tasks.npz"), Path(scratch, "out.json")
            np.savez(
                tasks, embeddings=embeddings.numpy(), support=block.support, query=block.query, methods=names
            )
            command = [
                str(python),
                __file__,
                "--worker",
                str(tasks),
                str(out),
                "--threads",
                str(args.threads),
            ]
            subprocess.run(command + (["--easyfsl-defaults"] if args.easyfsl_defaults else []), check=True)
            theirs = json.loads(out.read_text())
        print(f"### {ways}-way {shots}-shot, {args.queries} queries per class, {args.episodes} episodes\n")
        print(
            "| method | fewshot acc % | easyfsl acc % | agree (95% CI) | fewshot ms/ep | easyfsl ms/ep",
            end="",
        )
        print(" | speed-up |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name in names:
            print(row(name, ours[name], theirs[name], args.episodes), flush=True)
        print()


def torch_threads() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))


if __name__ == "__main__":
    main()
