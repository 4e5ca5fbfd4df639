"""Domain adaptation benchmarks (issue #16): rendered -> handwritten digits, the shift suites,
and skada 0.6.0 side by side on the same features.

``digits``: source = ``rendered-digits`` ``train`` (1,575 digits drawn from matplotlib's fonts),
target = scikit-learn's UCI ``digits``: the methods adapt on its ``train`` part (1,347 images,
labels never read) and every model is scored on its ``test`` part (450). The encoder is the
shipped Omniglot Conv-4 (BatchNorm). Per seed: the source-only network (``--source-epochs``
on the source), each network method adapted from it (``--epochs``, checkpoint chosen by the IM
validator), the frozen-feature methods on the source-only network's features (grid value
chosen by IM), and the oracle (the same network trained on the labelled target ``train``).
The "selected by V" rows are the method with the highest score of validator V (IM, `fewshot
adapt`'s default; entropy; SND) on the unlabelled target, and the candidate (source-only among
them) with the highest agreement with all candidates' vote (`fewshot rank-adapted`), and the one
with the highest reverse-validation score (`fewshot rank-adapted --source`: a 10-NN fitted on
the target's pixels with the candidate's labels, scored on the labelled source): the goal is
that the selected method closes at least half of the source-only -> oracle gap.

``shifts``: digits and Fashion-MNIST (``FEWSHOT_DATA_DIR``), source = ``train`` (a stratified
sample), target = the ``test`` items shifted (blur + contrast, rotation, inversion): adapted on
one half, scored on the other; a method whose accuracy falls below source-only is flagged as
negative transfer (as ``fewshot adapt`` does).

``skada``: CORAL, subspace alignment and OT mapping, fewshot's and skada 0.6.0's (installed by
this script in ``~/.cache/fewshot/bench/skada-0.6.0``, ``pip install --no-deps skada==0.6.0``,
numpy/scipy/scikit-learn/POT read from this interpreter through a ``.pth`` file: never a
dependency), on the same features (the seed-0 source-only network's) with the same kind of
head (multinomial logistic regression), accuracy on the digits test part and seconds. DANN is
left out: skada's DANN trains a skorch module end to end, fewshot's trains the toolkit encoder;
there is no shared feature-level setting to compare.

    nice python benchmarks/bench_adapt.py digits --seeds 0,1,2 --out benchmarks/adapt-digits.json
    FEWSHOT_DATA_DIR=/work/shared/data nice python benchmarks/bench_adapt.py shifts --seeds 0
    nice python benchmarks/bench_adapt.py skada
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, markdown_table, per_class_sample, subset, write_json  # noqa: E402

VENV = Path.home() / ".cache" / "fewshot" / "bench" / "skada-0.6.0"
NETWORK = ["adabn", "dann", "cdan", "cdan-e", "mcc", "self-training", "fixmatch"]
FEATURES = ["coral", "subspace", "ot"]
# fewshot.adapt.selection's per-model validators (IM is `fewshot adapt`'s default), then the
# agreement with the candidates' vote (`fewshot rank-adapted`; source-only is a candidate) and
# reverse validation in pixels (`fewshot rank-adapted --source`)
VALIDATORS = ("im", "entropy", "snd", "agreement", "reverse")
SHIFTS = {"blur-contrast": {"sigma": 1.0, "contrast": 0.4}, "rotation": {"degrees": 30.0}, "inversion": {}}


def _config(method: str, args, seed: int, **kw):
    from fewshot.adapt.config import AdaptConfig

    values = {"source_epochs": 0, "epochs": args.epochs, "batch_size": 64, "lr": 0.01, "seed": seed}
    return AdaptConfig(method=method, device="cpu", **{**values, **kw})


def _accuracy(model, data) -> float:
    from fewshot.adapt.trainer import target_probabilities

    p = target_probabilities(model, data.data, "cpu")
    return float((p.argmax(-1) == data.labels).double().mean())


def _im(model, items) -> float:
    from fewshot.adapt.selection import im_score
    from fewshot.adapt.trainer import target_probabilities

    return im_score(target_probabilities(model, items, "cpu"))


def trained(source, target_items, args, seed: int):
    """A fresh copy of the shipped Conv-4 with a head, trained on ``source`` for --source-epochs."""
    from fewshot.adapt.run import adapt
    from fewshot.build import build_encoder

    encoder = build_encoder(None).encoder
    config = _config("mcc", args, seed, source_epochs=args.source_epochs, epochs=0)
    return adapt(encoder, source, target_items, config, progress=False)[2]["source-only"]


def method_rows(source_only, source, target, test, args, seed: int, models=None) -> dict[str, dict]:
    """Every method adapted from ``source_only``: test accuracy, IM on the target, seconds
    (and, into ``models`` when given, each adapted model by method)."""
    from fewshot.adapt.run import adapt

    rows = {}
    for method in NETWORK + FEATURES:
        start = time.perf_counter()
        model = copy.deepcopy(source_only)
        kept, result, models_ = adapt(
            model.encoder, source, target, _config(method, args, seed), progress=False, init=model
        )
        adapted = models_["adapted"]
        if models is not None:
            models[method] = adapted
        rows[method] = {
            "test_accuracy": _accuracy(adapted, test),
            "target_im": result.adapted.scores["im"],
            "target_scores": dict(result.adapted.scores),  # every validator (entropy, im, snd)
            "params": result.params,
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"  seed {seed} {method}: {rows[method]['test_accuracy']:.4f}", flush=True)
    return rows


def ranking_scores(models: dict, items, source) -> tuple[dict[str, float], dict[str, float]]:
    """Every candidate's agreement with their vote and its reverse-validation score on the
    labelled ``source`` (`fewshot rank-adapted` without and with ``--source``)."""
    from fewshot.adapt.ranking import rank_models

    rows = rank_models(models, items, source=(source.data, source.labels))
    return {row["name"]: row["agreement"] for row in rows}, {row["name"]: row["reverse"] for row in rows}


def digits_suite(args) -> dict:
    from fewshot.data.loading import load_dataset

    source = load_dataset("rendered-digits", "train")
    target, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    per_seed = []
    for seed in args.seeds:
        source_only = trained(source, target.data, args, seed)
        oracle = trained(target, test.data, args, seed)
        models = {"source-only": source_only}  # a candidate: "do not adapt" can win
        rows = method_rows(source_only, source, target.data, test, args, seed, models)
        agreement, reverse = ranking_scores(models, target.data, source)
        selected = max(rows, key=lambda m: rows[m]["target_im"])
        by = {v: max(rows, key=lambda m, v=v: rows[m]["target_scores"][v]) for v in VALIDATORS[:3]}
        by["agreement"] = max(agreement, key=agreement.get)
        by["reverse"] = max(reverse, key=reverse.get)
        per_seed.append(
            {
                "seed": seed,
                "source_only": _accuracy(source_only, test),
                "source_only_im": _im(source_only, target.data),
                "oracle": _accuracy(oracle, test),
                "methods": rows,
                "selected": selected,
                "selected_by": by,
                "agreement": agreement,
                "reverse": reverse,
            }
        )
    return {"suite": "digits", "seeds": per_seed}


def _picked_accuracy(seed_result: dict, name: str) -> float:
    if name == "source-only":
        return seed_result["source_only"]
    return seed_result["methods"][name]["test_accuracy"]


def digits_table(result: dict) -> str:
    """Every method's accuracy, which one each validator picks, and the gap each pick closes."""
    seeds = result["seeds"]

    def cell(values):
        return f"{100 * np.mean(values):.1f} +- {100 * np.std(values):.1f}"

    def picked(method, validator):
        chosen = sum(s["selected_by"][validator] == method for s in seeds)
        return f"{chosen}/{len(seeds)}" if chosen else ""

    source_row = ["source-only", cell([s["source_only"] for s in seeds])]
    rows = [source_row + [picked("source-only", v) for v in VALIDATORS]]
    for method in NETWORK + FEATURES:
        acc = [s["methods"][method]["test_accuracy"] for s in seeds]
        rows.append([method, cell(acc)] + [picked(method, v) for v in VALIDATORS])
    src, orc = np.mean([s["source_only"] for s in seeds]), np.mean([s["oracle"] for s in seeds])
    lines = []
    for v in VALIDATORS:
        sel = [_picked_accuracy(s, s["selected_by"][v]) for s in seeds]
        rows.append([f"selected by {v}", cell(sel)] + [""] * len(VALIDATORS))
        closed = (np.mean(sel) - src) / max(1e-9, orc - src)
        verdict = "reached" if closed >= 0.5 else "NOT reached"
        lines.append(f"Gap closed by the {v}-selected method: {100 * closed:.0f}% (goal >= 50%: {verdict})")
    rows.append(["oracle (target labels)", cell([s["oracle"] for s in seeds])] + [""] * len(VALIDATORS))
    header = ["model", "digits test accuracy % (mean +- std)"] + [f"picked by {v}" for v in VALIDATORS]
    return markdown_table(header, rows) + "\n\n" + "\n".join(lines)


def shift_suite(args) -> dict:
    from fewshot.data.loading import load_dataset
    from fewshot.data.shifts import shift_data

    out = {}
    for name in ("digits", "fashion-mnist"):
        train, test = load_dataset(name, "train"), load_dataset(name, "test")
        source = subset(train, per_class_sample(train.labels.numpy(), args.per_class, 0))
        test = subset(test, per_class_sample(test.labels.numpy(), args.per_class, 1))
        half = np.arange(len(test)) % 2 == 0
        for shift, options in SHIFTS.items():
            shifted = shift_data(test, shift, 0, **options)
            adapt_on, score_on = subset(shifted, np.flatnonzero(half)), subset(shifted, np.flatnonzero(~half))
            for seed in args.seeds:
                source_only = trained(source, adapt_on.data, args, seed)
                rows = method_rows(source_only, source, adapt_on.data, score_on, args, seed)
                base = _accuracy(source_only, score_on)
                for row in rows.values():
                    row["negative_transfer"] = row["test_accuracy"] < base
                out[f"{name}/{shift}/{seed}"] = {"source_only": base, "methods": rows}
    return {"suite": "shifts", "runs": out}


def shift_table(result: dict) -> str:
    rows = []
    for key, run in result["runs"].items():
        cells = [key, f"{100 * run['source_only']:.1f}"]
        for method in NETWORK + FEATURES:
            r = run["methods"][method]
            cells.append(f"{100 * r['test_accuracy']:.1f}" + (" (neg.)" if r["negative_transfer"] else ""))
        rows.append(cells)
    return markdown_table(["data/shift/seed", "source-only", *NETWORK, *FEATURES], rows)


def skada_python() -> Path:
    import _common

    return _common.peer_python(VENV, ["skada==0.6.0"])


def skada_worker(features: str, out: str) -> None:
    """Runs in the skada venv: CORAL, SA, OT with a logistic-regression head; accuracy, seconds."""
    from skada import CORAL, OTMapping, SubspaceAlignment
    from sklearn.linear_model import LogisticRegression

    a = np.load(features)
    xs, ys, xt, xtest, ytest = a["xs"], a["ys"], a["xt"], a["xtest"], a["ytest"]
    x = np.concatenate([xs, xt])
    y = np.concatenate([ys, -np.ones(len(xt), dtype=ys.dtype)])
    domain = np.concatenate([np.ones(len(xs)), -np.ones(len(xt))]).astype(int)
    head = {"max_iter": 1000, "C": 1.0}
    methods = {
        "coral": lambda: CORAL(LogisticRegression(**head)),
        "subspace": lambda: SubspaceAlignment(LogisticRegression(**head), n_components=int(a["sa_dim"])),
        "ot": lambda: OTMapping(LogisticRegression(**head)),
    }
    results = {}
    for name, make in methods.items():
        start = time.perf_counter()
        model = make().fit(x, y, sample_domain=domain)
        predicted = model.predict(xtest, sample_domain=-np.ones(len(xtest), dtype=int))
        results[name] = {
            "accuracy": float((predicted == ytest).mean()),
            "seconds": time.perf_counter() - start,
        }
    Path(out).write_text(json.dumps(results))


def _ours(method: str, params: dict, zs, ys, zt, ztest, ytest) -> dict:
    from fewshot.adapt import ADAPTERS
    from fewshot.adapt.heads import fit_linear_head, fold, head_logits

    start = time.perf_counter()
    adapter = ADAPTERS.get(method)(**params).fit(zs, ys, zt)
    head = fold(fit_linear_head(adapter.source_features(zs), ys, 10), adapter.target_map())
    seconds = time.perf_counter() - start
    accuracy = float((head_logits(head, ztest).argmax(-1) == ytest).double().mean())
    return {"accuracy": accuracy, "seconds": seconds}


def skada_suite(args) -> dict:
    """The same features for both: the seed's source-only network, frozen."""
    from fewshot.adapt.heads import fit_linear_head, head_logits
    from fewshot.data.loading import load_dataset

    source = load_dataset("rendered-digits", "train")
    target, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    encoder = trained(source, target.data, args, args.seeds[0]).encoder.eval()
    zs, zt, ztest = (encoder.encode_batched(d.data).float() for d in (source, target, test))
    ys, ytest = source.labels, test.labels
    head = fit_linear_head(zs, ys, 10)
    baseline = float((head_logits(head, ztest).argmax(-1) == ytest).double().mean())
    sa_dim = 32
    settings = {"coral": {"eps": 1.0}, "subspace": {"dim": sa_dim}, "ot": {"reg": 0.0}}
    ours = {}
    for method, params in settings.items():
        _ours(method, params, zs, ys, zt, ztest, ytest)  # warm-up outside the clock
        ours[method] = _ours(method, params, zs, ys, zt, ztest, ytest)
    with tempfile.TemporaryDirectory() as tmp:
        features, out = Path(tmp, "features.npz"), Path(tmp, "skada.json")
        arrays = {"xs": zs, "ys": ys, "xt": zt, "xtest": ztest, "ytest": ytest}
        np.savez(features, sa_dim=sa_dim, **{k: v.numpy() for k, v in arrays.items()})
        worker = [str(skada_python()), __file__, "skada", "--skada-worker", str(features), str(out)]
        subprocess.run(worker, check=True)
        theirs = json.loads(out.read_text())
    return {
        "suite": "skada",
        "source_only": baseline,
        "settings_used": settings,
        "ours": ours,
        "skada": theirs,
    }


def skada_table(result: dict) -> str:
    rows = [["source-only (linear head)", f"{100 * result['source_only']:.1f}", "", "", "", ""]]
    for method, ours in result["ours"].items():
        theirs = result["skada"][method]
        ratio = theirs["seconds"] / max(1e-9, ours["seconds"])
        rows.append(
            [method, f"{100 * ours['accuracy']:.1f}", f"{100 * theirs['accuracy']:.1f}"]
            + [f"{ours['seconds']:.2f}", f"{theirs['seconds']:.2f}", f"{ratio:.1f}x"]
        )
    headers = ["method", "fewshot acc %", "skada acc %", "fewshot s", "skada s", "skada/fewshot time"]
    return markdown_table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=["digits", "shifts", "skada"])
    parser.add_argument("--seeds", default="0,1,2", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--source-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=100, help="shifts: source and test items per class")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skada-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.skada_worker:
        return skada_worker(*args.skada_worker)
    import torch

    torch.set_num_threads(1)
    info = machine()
    started = time.perf_counter()
    suite = {"digits": digits_suite, "shifts": shift_suite, "skada": skada_suite}[args.suite]
    result = {"machine": info, "settings": {k: v for k, v in vars(args).items() if k != "out"}, **suite(args)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    table = {"digits": digits_table, "shifts": shift_table, "skada": skada_table}[args.suite](result)
    print(machine_line(info))
    print(table)
    if args.out:
        write_json(
            args.out, {**result, "table": table, "settings": {**result["settings"], "out": str(args.out)}}
        )


if __name__ == "__main__":
    main()
