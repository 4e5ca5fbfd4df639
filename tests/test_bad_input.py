"""Bad input, one row each: the command, its exit code, a fragment of its one-line message, and
nothing changed on disk.

Every row runs in a fresh working folder (`workspace`) holding a small image folder
(``imgs/``, three classes of two JPEGs), a labels file and a tiny embedding file. The whole
tree is fingerprinted (paths, sizes, contents) before and after the command: a refused
command must leave it exactly as it was. Add a row for every new option or command; the
placeholders ``{ws}`` (the workspace) and ``{ckpt}`` (a tiny trained checkpoint) are filled
in at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tree_digest
from fewshot_cli.app import app
from typer.testing import CliRunner

MICRO = ["--model", "micro-clip", "--pretrained", "none", "--workers", "0"]

# (id, argv, exit code, fragment of the message, case-insensitive)
COMMON_CASES = [
    ("unknown-command", ["nope"], 2, "no such command"),
    ("eval-queries-0", ["eval", "--queries", "0"], 2, "--queries"),
    ("eval-shots-0", ["eval", "--shots", "0"], 2, "--shots"),
    ("eval-episodes-0", ["eval", "--episodes", "0"], 2, "--episodes"),
    ("eval-seed-negative", ["eval", "--seed", "-1"], 2, "--seed"),
    ("eval-method-fixed-class", ["eval", "--method", "classifier"], 2, "is a fixed-class model"),
    (
        "label-batch-size-0",
        ["label", "{ws}/imgs", "-l", "a,b", "--batch-size", "0", *MICRO],
        2,
        "--batch-size",
    ),
    ("label-workers-negative", ["label", "{ws}/imgs", "-l", "a,b", "--workers", "-1"], 2, "--workers"),
    ("train-image-size-3", ["train", "--image-size", "3"], 2, "--image-size"),
    ("data-download-unknown", ["data", "download", "mnist"], 2, "unknown data set 'mnist'"),
    ("data-info-unknown", ["data", "info", "mnist"], 2, "unknown data set 'mnist'"),
]

# Each area keeps its rows in its own list, so that changes to one area do not touch another's.
LABEL = ["label", "{ws}/imgs", "-l", "red circle,blue square", *MICRO]
PREDICT = ["predict", "-c", "{ckpt}", "-s", "{ws}/imgs", "-q", "{ws}/imgs"]
LABEL_CASES: list[tuple] = [
    ("label-one-label", ["label", "{ws}/imgs", "-l", "red", *MICRO], 2, "--labels gives one class"),
    ("label-out-is-a-folder", [*LABEL, "--out", "{ws}/imgs"], 2, "imgs is a folder: give a file name"),
    ("label-out-proc-file", [*LABEL, "--out", "/proc/version"], 2, "--out /proc/version cannot be written"),
    ("label-out-under-a-file", [*LABEL, "--out", "{ws}/a-file.txt/l.csv"], 2, "a-file.txt is not a folder"),
    ("label-out-device", [*LABEL, "--out", "/dev/null"], 2, "--out /dev/null is not a regular file"),
    (
        "label-save-class-embeddings-folder",
        [*LABEL, "--save-class-embeddings", "{ws}/imgs"],
        2,
        "--save-class-embeddings",
    ),
    (
        "label-save-class-embeddings-proc",
        [*LABEL, "--save-class-embeddings", "/proc/version"],
        2,
        "--save-class-embeddings /proc/version cannot be written",
    ),
    (
        "label-dest-inside-input",
        [*LABEL, "--organize", "move", "--dest", "{ws}/imgs/sorted"],
        2,
        "is inside the input folder",
    ),
    (
        "label-dest-is-input",
        [*LABEL, "--organize", "copy", "--dest", "{ws}/imgs"],
        2,
        "inside the input folder",
    ),
    (
        "label-dest-is-a-file",
        [*LABEL, "--organize", "copy", "--dest", "{ws}/a-file.txt"],
        2,
        "is not a folder",
    ),
    ("predict-out-is-a-folder", [*PREDICT, "--out", "{ws}/imgs"], 2, "imgs is a folder: give a file name"),
    (
        "predict-out-proc-file",
        [*PREDICT, "--out", "/proc/version"],
        2,
        "--out /proc/version cannot be written",
    ),
    ("predict-batch-size-0", [*PREDICT, "--batch-size", "0"], 2, "--batch-size"),
    ("predict-workers-negative", [*PREDICT, "--workers", "-1"], 2, "--workers"),
]
INDEX_BUILD = ["index", "build", "{ws}/imgs", "--out", "{ws}/ix", *MICRO]
INDEX_CASES: list[tuple] = [
    ("index-build-batch-size-0", [*INDEX_BUILD, "--batch-size", "0"], 2, "--batch-size"),
    ("index-build-workers-negative", [*INDEX_BUILD, "--workers", "-1"], 2, "--workers"),
    (
        "index-add-batch-size-0",
        ["index", "add", "{ws}/ix", "{ws}/imgs", "--batch-size", "0"],
        2,
        "--batch-size",
    ),
    (
        "index-add-workers-negative",
        ["index", "add", "{ws}/ix", "{ws}/imgs", "--workers", "-1"],
        2,
        "--workers",
    ),
    (
        "index-build-out-is-a-file",
        ["index", "build", "{ws}/imgs", "--out", "{ws}/a-file.txt", "--json"],
        2,
        "a-file.txt exists and is not a directory",
    ),
    (
        "index-build-out-proc-file",
        ["index", "build", "{ws}/imgs", "--out", "/proc/version"],
        2,
        "not a directory",
    ),
    (
        "index-build-out-unwritable",
        ["index", "build", "{ws}/imgs", "--out", "/proc/fewshot-ix"],
        2,
        "--out /proc/fewshot-ix cannot be written",
    ),
    (
        "index-build-pickled-weights",
        [
            "index",
            "build",
            "{ws}/imgs",
            "--out",
            "{ws}/ix",
            "--model",
            "micro-clip",
            "--pretrained",
            "{ws}/a-file.txt",
        ],
        2,
        "is not a .safetensors file",
    ),
    ("index-build-random-weights", INDEX_BUILD, 2, "--pretrained none has random initial weights"),
    ("index-build-bad-metric", [*INDEX_BUILD, "--metric", "cosinus"], 2, "unknown metric 'cosinus'"),
    ("index-build-bad-factory", [*INDEX_BUILD, "--factory", "Nope12"], 2, "cannot build index 'Nope12'"),
    ("index-build-too-few-to-train", [*INDEX_BUILD, "--factory", "IVF64,Flat"], 2, "at least 64 vectors"),
    ("index-build-unknown-encoder", [*INDEX_BUILD[:5], "--encoder", "nope"], 2, "unknown encoder 'nope'"),
    (
        "index-build-model-without-clip",
        [*INDEX_BUILD[:5], "--encoder", "identity", "--model", "m"],
        2,
        "--model and --pretrained apply to the clip encoder only",
    ),
    ("index-build-no-images", ["index", "build", "{ws}/nothing", "--out", "{ws}/ix"], 2, "nothing"),
    ("index-add-not-an-index", ["index", "add", "{ws}/imgs", "{ws}/imgs"], 2, "no saved index"),
    ("index-add-no-index", ["index", "add", "{ws}/ix", "{ws}/imgs", "--json"], 2, "no index directory"),
    ("index-search-k-0", ["index", "search", "{ws}/imgs", "--text", "red", "-k", "0"], 2, "-k must be >= 1"),
    ("index-search-no-query", ["index", "search", "{ws}/imgs"], 2, "exactly one of --text or --image"),
    ("index-search-not-an-index", ["index", "search", "{ws}/imgs", "--text", "red"], 2, "no saved index"),
    ("index-info-no-index", ["index", "info", "{ws}/ix", "--json"], 2, "no index directory"),
]
FT = ["finetune", "{ws}/imgs", "--encoder", "conv4", "--image-size", "16"]
TRAIN_CASES: list[tuple] = [
    ("train-steps-0", ["train", "--steps", "0"], 2, "--steps"),
    ("train-lr-negative", ["train", "--lr", "-1"], 2, "--lr"),
    ("train-lr-0", ["train", "--lr", "0"], 2, "--lr"),
    ("train-lr-nan", ["train", "--lr", "nan"], 2, "--lr"),
    ("train-lr-step-negative", ["train", "--lr-step", "-1"], 2, "--lr-step"),
    ("train-val-every-0", ["train", "--val-every", "0"], 2, "--val-every"),
    ("train-val-episodes-0", ["train", "--val-episodes", "0"], 2, "--val-episodes"),
    ("train-meta-batch-0", ["train", "--meta-batch", "0"], 2, "--meta-batch"),
    ("train-patience-negative", ["train", "--patience", "-1"], 2, "--patience"),
    ("train-seed-negative", ["train", "--seed", "-1"], 2, "--seed"),
    ("train-queries-0", ["train", "--queries", "0"], 2, "--queries"),
    ("train-shots-0", ["train", "--shots", "0"], 2, "--shots"),
    ("train-ways-1", ["train", "--ways", "1"], 2, "--ways"),
    ("train-inner-lr-0", ["train", "--method", "maml", "--inner-lr", "0"], 2, "--inner-lr"),
    ("train-inner-steps-0", ["train", "--method", "maml", "--inner-steps", "0"], 2, "--inner-steps"),
    ("train-test-inner-steps-0", ["train", "--method", "maml", "--test-inner-steps", "0"], 2, "--test-inner"),
    ("train-out-folder", ["train", "--out", "{ws}"], 2, "is a folder"),
    ("train-out-proc-version", ["train", "--out", "/proc/version"], 2, "--out"),
    ("train-out-in-proc", ["train", "--out", "/proc/m.safetensors"], 2, "not writable"),
    ("train-out-under-a-file", ["train", "--out", "{ws}/a-file.txt/m.safetensors"], 2, "not a folder"),
    ("train-out-not-safetensors", ["train", "--out", "{ws}/m.pt"], 2, ".safetensors"),
    ("finetune-epochs-0", [*FT, "--epochs", "0"], 2, "--epochs"),
    ("finetune-batch-size-0", [*FT, "--batch-size", "0"], 2, "--batch-size"),
    ("finetune-lr-0", [*FT, "--lr", "0"], 2, "--lr"),
    ("finetune-head-lr-negative", [*FT, "--head-lr", "-1"], 2, "--head-lr"),
    ("finetune-lr-decay-0", [*FT, "--lr-decay", "0"], 2, "--lr-decay"),
    ("finetune-weight-decay-negative", [*FT, "--weight-decay", "-1"], 2, "--weight-decay"),
    ("finetune-val-fraction-1", [*FT, "--val-fraction", "1"], 2, "--val-fraction"),
    ("finetune-val-fraction-0", [*FT, "--val-fraction", "0"], 2, "--val-fraction"),
    ("finetune-patience-negative", [*FT, "--patience", "-1"], 2, "--patience"),
    ("finetune-freeze-negative", [*FT, "--freeze", "-1"], 2, "--freeze"),
    ("finetune-unfreeze-every-0", [*FT, "--unfreeze-every", "0"], 2, "--unfreeze-every"),
    ("finetune-seed-negative", [*FT, "--seed", "-1"], 2, "--seed"),
    ("finetune-cocoop-needs-clip", [*FT, "--strategy", "cocoop"], 2, "cocoop tunes prompts inside a CLIP"),
    (
        "finetune-image-size-8",
        ["finetune", "{ws}/imgs", "--encoder", "conv4", "--image-size", "8"],
        2,
        "--image-size",
    ),
    ("finetune-out-folder", [*FT, "--out", "{ws}"], 2, "is a folder"),
    ("finetune-out-proc-version", [*FT, "--out", "/proc/version"], 2, "--out"),
    ("finetune-out-in-proc", [*FT, "--out", "/proc/m.safetensors"], 2, "not writable"),
    (
        "train-digits-val-part-too-small",
        ["train", "--dataset", "digits", "--split", "0.5,0,0.5"],
        2,
        "val part 0 class(es), validation needs 2",
    ),
    (
        "train-fashion-two-ratios-no-val",
        ["train", "--dataset", "fashion-mnist", "--split", "0.4,0.6", "--data-dir", "{ws}/none"],
        2,
        "val part 0 class(es)",
    ),
    (
        "finetune-digits-split-unknown",
        ["finetune", "digits", "--split", "nope"],
        2,
        "unknown split 'nope' of digits",
    ),
    (
        "finetune-fashion-missing",
        ["finetune", "fashion-mnist", "--subset", "train", "--data-dir", "{ws}/none"],
        2,
        "Fashion-MNIST not found",
    ),
    (
        "train-rotations-folder",
        ["train", "--dataset", "{ws}/imgs", "--rotations"],
        2,
        "applies to omniglot only",
    ),
    (
        "train-within-group-flat-folder",
        [
            "train",
            "--dataset",
            "{ws}/imgs",
            "--split",
            "0.67,0,0.33",
            "--ways",
            "2",
            "--queries",
            "1",
            "--within-group",
        ],
        2,
        "--within-group: this data set has no class groups",
    ),
]
IMGS = ["--dataset", "{ws}/imgs", "--subset", "all"]
EVAL_CASES: list[tuple] = [
    ("eval-ways-1", ["eval", "--ways", "1"], 2, "--ways"),
    ("eval-coop-not-clip", ["eval", "--method", "coop", "--dataset", "digits"], 2, "needs --encoder clip"),
    ("eval-too-many-ways", ["eval", *IMGS, "--ways", "4", "--queries", "1"], 2, "use --ways 3 or fewer"),
    (
        "eval-small-class-by-name",
        ["eval", *IMGS, "--ways", "2", "--shots", "2", "--queries", "1"],
        2,
        "'blue circle'",
    ),
    (
        "eval-skip-small-leaves-no-class",
        ["eval", *IMGS, "--ways", "2", "--shots", "2", "--queries", "1", "--skip-small-classes"],
        2,
        "the data set has no class with at least 3 items",
    ),
    (
        "eval-one-class",
        ["eval", "--dataset", "{ws}/imgs", "--split", "0.34,0.33,0.33", "--ways", "2", "--queries", "1"],
        2,
        "only 1 class: an episode needs at least 2",
    ),
    (
        "eval-dataset-missing",
        ["eval", "--dataset", "bad/", "--ways", "2"],
        2,
        "neither a named data set (digits, fashion-mnist, omniglot, rendered-digits) nor an existing",
    ),
    ("eval-dataset-not-embeddings", ["eval", "--dataset", "{ws}/feats.npz"], 2, "not an embedding file"),
    ("eval-episode-file-not-npz", ["eval", "--episode-file", "{ws}/a-file.txt"], 2, "not an .npz archive"),
    ("eval-episode-file-missing", ["eval", "--episode-file", "{ws}/none.npz"], 2, "episode file not found"),
    ("eval-metric-unknown", ["eval", "--metric", "manhattan"], 2, "unknown metric"),
    ("eval-method-unknown", ["eval", "--method", "knn"], 2, "unknown method"),
    ("compare-maml", ["compare", "--methods", "maml"], 2, "compare runs frozen-encoder methods only"),
    ("compare-classifier", ["compare", "--methods", "classifier"], 2, "is a fixed-class model"),
    ("compare-checkpoint-missing", ["compare", "--checkpoint", "{ws}/none.safetensors"], 2, "no such file"),
    ("compare-save-episodes-file", ["compare", "--save-episodes", "{ws}/a-file.txt"], 2, "is a file"),
    ("compare-queries-0", ["compare", "--queries", "0"], 2, "--queries"),
    ("compare-episodes-0", ["compare", "--episodes", "0"], 2, "--episodes"),
    ("compare-shots-0", ["compare", "--shots", "0,1"], 2, "--shots"),
    ("compare-plot-not-png", ["compare", "--plot", "{ws}/p.jpg"], 2, "--plot must be a .png"),
    ("compare-option-no-key", ["compare", "--method-option", "coop=3"], 2, "must be NAME.KEY=VALUE"),
    ("compare-option-unknown-method", ["compare", "--method-option", "knn.k=3"], 2, "unknown method 'knn'"),
    (
        "compare-option-unknown-key",
        ["compare", "--method-option", "protonet.k=3"],
        2,
        "protonet has no option 'k'",
    ),
    (
        "compare-option-bad-value",
        ["compare", "--method-option", "tip-adapter.train_steps=many"],
        2,
        "a whole number",
    ),
    (
        "compare-option-not-compared",
        ["compare", "--methods", "protonet", "--method-option", "simpleshot.scale=5"],
        2,
        "simpleshot is not among the compared methods",
    ),
    (
        "compare-option-bad-choice",
        ["compare", "--methods", "protonet", "--method-option", "protonet.metric=x"],
        2,
        "metric takes one of euclidean, cosine",
    ),
    (
        "eval-fashion-split-unknown",
        ["eval", "--dataset", "fashion-mnist", "--split", "vinyals"],
        2,
        "unknown split 'vinyals' of fashion-mnist",
    ),
    (
        "eval-digits-subset-unknown",
        ["eval", "--dataset", "digits", "--subset", "background"],
        2,
        "unknown subset 'background' of the items split of digits",
    ),
    (
        "eval-digits-split-bad-ratios",
        ["eval", "--dataset", "digits", "--split", "1,x,1"],
        2,
        "class ratios train,val,test",
    ),
    (
        "eval-digits-too-many-ways",
        ["eval", "--dataset", "digits", "--ways", "11"],
        2,
        "use --ways 10 or fewer",
    ),
    (
        "eval-fashion-missing",
        ["eval", "--dataset", "fashion-mnist", "--data-dir", "{ws}/none"],
        2,
        "fewshot data download fashion-mnist",
    ),
    (
        "compare-digits-test-part-empty",
        ["compare", "--dataset", "digits", "--split", "0.9,0.1,0"],
        2,
        "the test part of split 0.9,0.1,0 has no class",
    ),
    (
        "eval-rotations-folder",
        ["eval", *IMGS, "--rotations"],
        2,
        "--rotations/--no-rotations applies to omniglot",
    ),
    (
        "eval-split-bad-rotations-suffix",
        ["eval", "--split", "lake+rot"],
        2,
        "unknown Omniglot split 'lake+rot'",
    ),
    (
        "eval-within-group-flat-folder",
        ["eval", *IMGS, "--ways", "2", "--queries", "1", "--within-group"],
        2,
        "this data set has no class groups (omniglot's are its alphabets",
    ),
    (
        "compare-within-group-flat-folder",
        [
            "compare",
            "--dataset",
            "{ws}/imgs",
            "--within-group",
            "--shots",
            "1",
            "--ways",
            "2",
            "--queries",
            "1",
        ],
        2,
        "--within-group: this data set has no class groups",
    ),
]

RANK = ["rank-models", "{ws}/imgs", "--models", "conv4"]
CURVES = ["curves", "{ws}/imgs", "-e", "conv4"]
REPR = ["representations", "{ws}/imgs", "--map", "{ws}/m.png"]
TRANSFER_CASES: list[tuple] = [
    ("rank-unknown-score", [*RANK, "--scores", "logme,nope"], 2, "--scores 'logme,nope'"),
    ("rank-unknown-strategy", [*RANK, "--strategy", "nope"], 2, "--strategy 'nope'"),
    ("rank-model-twice", ["rank-models", "{ws}/imgs", "--models", "conv4,conv4"], 2, "an encoder twice"),
    ("rank-bad-model-option", ["rank-models", "{ws}/imgs", "--models", "conv4[hidden]"], 2, "option=value"),
    ("rank-unknown-model", ["rank-models", "{ws}/imgs", "--models", "conv4,nope"], 2, "--models: 'nope'"),
    ("rank-out-not-json", [*RANK, "--out", "{ws}/r.txt"], 2, "--out must end in .json"),
    ("rank-per-class-1", [*RANK, "--per-class", "1"], 2, "--per-class"),
    ("curves-size-0", [*CURVES, "--sizes", "0,5"], 2, "--sizes '0,5'"),
    ("curves-frozen-strategy", [*CURVES, "--strategy", "linear-probe"], 2, "curves train"),
    ("curves-curve-size", [*CURVES, "--sizes", "1,5", "--curve-size", "7"], 2, "--curve-size 7"),
    ("curves-plot-not-png", [*CURVES, "--plot", "{ws}/c.jpg"], 2, "--plot must end in .png"),
    ("curves-seeds-0", [*CURVES, "--seeds", "0"], 2, "--seeds"),
    ("curves-unknown-encoder", ["curves", "{ws}/imgs", "-e", "nope"], 2, "--encoder: 'nope'"),
    ("repr-nothing", ["representations", "{ws}/imgs", "-e", "conv4"], 2, "nothing to do"),
    ("repr-method", [*REPR, "--method", "pca"], 2, "--method 'pca'"),
    ("repr-map-not-png", ["representations", "{ws}/imgs", "--map", "{ws}/m.jpg"], 2, "--map must end"),
    ("repr-probe-plot-alone", [*REPR, "--probe-plot", "{ws}/p.png"], 2, "--probe-plot needs --probe"),
]

CL = ["continual", "--data", "{ws}/imgs", "--image-size", "16", "--tasks", "3", "--device", "cpu"]
CONTINUAL_CASES: list[tuple] = [
    ("continual-unknown-scenario", [*CL, "--scenario", "open-world"], 2, "unknown --scenario 'open-world'"),
    ("continual-unknown-strategy", [*CL, "--strategy", "nope"], 2, "unknown --strategy 'nope'"),
    (
        "continual-option-of-another",
        [*CL, "--strategy", "ewc", "--memory", "5"],
        2,
        "--memory does not apply",
    ),
    ("continual-multihead-class-il", [*CL, "--strategy", "multihead"], 2, "needs --scenario task-il"),
    ("continual-shifts-not-domain", [*CL, "--shifts", "none,inversion"], 2, "needs --scenario domain-il"),
    (
        "continual-unknown-shift",
        [*CL, "--scenario", "domain-il", "--shifts", "none,fog"],
        2,
        "unknown shift 'fog'",
    ),
    ("continual-tasks-0", [*CL[:-4], "--tasks", "0"], 2, "--tasks"),
    (
        "continual-too-many-tasks",
        [*CL[:-4], "--tasks", "4", "--device", "cpu"],
        2,
        "between 1 and the 3 classes",
    ),
    ("continual-test-fraction", [*CL, "--test-fraction", "1.5"], 2, "--test-fraction"),
    ("continual-class-order", [*CL, "--class-order", "0,1,x"], 2, "--class-order"),
    ("continual-optimizer", [*CL, "--optimizer", "lbfgs"], 2, "--optimizer"),
    ("continual-precision", [*CL, "--precision", "fp16"], 2, "--precision"),
    ("continual-memory-0", [*CL, "--memory", "0"], 2, "--memory"),
    ("continual-augment", [*CL, "--augment", "rotate"], 2, "--augment must be one of"),
    ("continual-replay-ratio", [*CL, "--replay-ratio", "0"], 2, "--replay-ratio"),
    (
        "continual-augment-not-replay",
        [*CL, "--strategy", "ewc", "--augment", "shift"],
        2,
        "--augment does not apply",
    ),
    ("continual-out-suffix", [*CL, "--out", "{ws}/m.pt"], 2, "--out must end in .safetensors"),
]

REVIEW_CASES: list[tuple] = [
    ("review-missing-results", ["review", "{ws}/nope.csv", "--port", "0"], 2, "nope.csv does not exist"),
    ("review-results-folder", ["review", "{ws}/imgs", "--port", "0"], 2, "imgs is a folder: give the csv"),
    (
        "review-foreign-file",
        ["review", "{ws}/labels.txt", "--port", "0"],
        2,
        "not a file from fewshot label or predict",
    ),
    ("review-port-too-big", ["review", "{ws}/labels.txt", "--port", "70000"], 2, "--port"),
    (
        "review-images-not-a-folder",
        ["review", "{ws}/labels.txt", "--images", "{ws}/a-file.txt", "--port", "0"],
        2,
        "a-file.txt is not a folder",
    ),
    (
        "review-unknown-encoder",
        ["review", "{ws}/labels.txt", "--encoder", "nope", "--port", "0"],
        2,
        "--encoder 'nope' is neither a checkpoint file nor an encoder name",
    ),
]


AD = ["adapt", "--source", "{ws}/imgs", "--target", "{ws}/imgs", "--device", "cpu"]
ADAPT_CASES: list[tuple] = [
    ("adapt-unknown-method", [*AD, "--method", "nope"], 2, "unknown --method 'nope'"),
    ("adapt-unknown-param", [*AD, "--method", "coral", "-p", "nope=1"], 2, "--param 'nope=1'"),
    ("adapt-param-not-a-number", [*AD, "--method", "coral", "-p", "eps=abc"], 2, "--param eps=abc"),
    ("adapt-unknown-validator", [*AD, "--method", "coral", "--select", "nope"], 2, "--select 'nope'"),
    ("adapt-unknown-keep", [*AD, "--method", "coral", "--keep", "maybe"], 2, "--keep 'maybe'"),
    ("adapt-unknown-shift", [*AD, "--method", "coral", "--target-shift", "fog"], 2, "unknown shift 'fog'"),
    ("adapt-out-not-safetensors", [*AD, "--method", "coral", "--out", "{ws}/m.txt"], 2, "--out must end"),
    ("adapt-epochs-0", [*AD, "--method", "dann", "--epochs", "0"], 2, "--epochs"),
    (
        "adapt-different-classes",
        [*AD[:3], "--target", "digits", "--method", "coral", "--encoder", "conv4", "--image-size", "16"],
        2,
        "the source and target have different classes",
    ),
    (
        "adapt-target-no-readable-image",
        [*AD[:3], "--target", "{ws}/a-file.txt", "--method", "coral"],
        2,
        "cannot read",
    ),
    (
        "adapt-batchnorm-method-on-clip",
        [*AD, "--method", "adabn", "--encoder", "clip", *MICRO[:4]],
        2,
        "--method adabn re-estimates BatchNorm statistics and the clip encoder has no BatchNorm layer",
    ),
]

CASES = COMMON_CASES + LABEL_CASES + INDEX_CASES + TRAIN_CASES + EVAL_CASES + TRANSFER_CASES + CONTINUAL_CASES
CASES += REVIEW_CASES
CASES += ADAPT_CASES

EMB = ["embed", "{ws}/imgs", "--out", "{ws}/emb"]
FROM = ["index", "build", "--from-embeddings", "{ws}/imgs", "--out", "{ws}/ix"]
SCALE_CASES: list[tuple] = [
    ("embed-bad-engine", [*EMB, "--engine", "spark"], 2, "--engine 'spark': choose one of local, ray"),
    ("embed-actors-without-ray", [*EMB, "--actors", "2"], 2, "--actors applies to --engine ray only"),
    ("embed-shard-size-0", [*EMB, "--shard-size", "0"], 2, "--shard-size"),
    ("label-bad-engine", [*LABEL, "--engine", "spark"], 2, "--engine 'spark': choose one of local, ray"),
    ("label-actors-without-ray", [*LABEL, "--actors", "2"], 2, "--actors applies to --engine ray only"),
    (
        "finetune-nproc-frozen-strategy",
        ["finetune", "{ws}/imgs", "-s", "linear-probe", "--nproc", "2", "--out", "{ws}/m.safetensors"],
        2,
        "several processes train only the strategies full, partial, gradual",
    ),
    (
        "finetune-nproc-batch-1",
        ["finetune", "{ws}/imgs", "--batch-size", "1", "--nproc", "2", "--out", "{ws}/m.safetensors"],
        2,
        "--batch-size 1 cannot be shared by 2 processes",
    ),
    ("embed-missing-source", ["embed", "{ws}/nope", "--out", "{ws}/emb"], 2, "does not exist"),
    ("embed-out-is-a-file", ["embed", "{ws}/imgs", "--out", "{ws}/a-file.txt"], 2, "is not a directory"),
    ("index-from-not-embeddings", FROM, 2, "holds no embeddings"),
    ("index-from-embeddings-and-images", [*FROM, "{ws}/imgs"], 2, "--from-embeddings replaces IMAGES"),
    ("index-from-bad-layout", [*FROM, "--layout", "flat"], 2, "--layout 'flat'"),
    ("index-build-nothing", ["index", "build", "--out", "{ws}/ix"], 2, "give IMAGES, or --from-embeddings"),
    (
        "train-nproc-meta-batch-1",
        ["train", "--nproc", "2", "--steps", "1", "--device", "cpu", "--out", "{ws}/m.safetensors"],
        2,
        "--meta-batch 1 cannot be shared by 2 processes",
    ),
]
CASES += SCALE_CASES

MT = ["multitask", "--data", "digits,{ws}/imgs", "--image-size", "16", "--device", "cpu"]
MULTITASK_CASES: list[tuple] = [
    (
        "multitask-one-data-set",
        ["multitask", "--data", "{ws}/imgs"],
        2,
        "--data needs at least two data sets",
    ),
    ("multitask-data-twice", ["multitask", "--data", "{ws}/imgs,{ws}/imgs/"], 2, "twice"),
    ("multitask-weights-count", [*MT, "--weights", "1"], 2, "--weights: give one per task (2), got 1"),
    ("multitask-weights-not-numbers", [*MT, "--weights", "1,x"], 2, "--weights must be numbers"),
    (
        "multitask-weights-uncertainty",
        [*MT, "--weights", "1,2", "--weighting", "uncertainty"],
        2,
        "--weighting fixed",
    ),
    ("multitask-weights-all-0", [*MT, "--weights", "0,0"], 2, "not all 0"),
    (
        "multitask-sampling",
        [*MT, "--sampling", "greedy"],
        2,
        "--sampling must be one of proportional, uniform",
    ),
    (
        "multitask-weighting",
        [*MT, "--weighting", "gradnorm"],
        2,
        "--weighting must be one of fixed, uncertainty",
    ),
    ("multitask-optimizer", [*MT, "--optimizer", "lbfgs"], 2, "--optimizer"),
    ("multitask-test-fraction", [*MT, "--test-fraction", "1.5"], 2, "--test-fraction"),
    ("multitask-max-classes-1", [*MT, "--max-classes", "1"], 2, "--max-classes"),
    ("multitask-out-a-file", [*MT, "--out", "{ws}/a-file.txt"], 2, "exists and is not a directory"),
]
CASES += MULTITASK_CASES


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    from fewshot.zeroshot.micro_clip import make_folder

    root = tmp_path_factory.mktemp("bad-input-template")
    imgs = make_folder(root / "imgs", per_class=2, size=32)
    for folder in sorted(imgs.iterdir())[3:]:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    (root / "labels.txt").write_text("red circle\nblue square\n")
    rng = np.random.default_rng(0)
    np.savez(
        root / "feats.npz", embeddings=rng.normal(size=(40, 8)).astype("float32"), labels=np.arange(40) % 4
    )
    (root / "a-file.txt").write_text("not a folder\n")
    return root


@pytest.fixture
def workspace(template, tmp_path, monkeypatch) -> Path:
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(template, ws, symlinks=True)
    monkeypatch.chdir(ws)
    return ws


def fill(argv: list[str], ws: Path, ckpt: Path) -> list[str]:
    return [a.replace("{ws}", str(ws)).replace("{ckpt}", str(ckpt)) for a in argv]


@pytest.mark.parametrize(("argv", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    argv, code, fragment, workspace, tiny_checkpoint
):
    before = tree_digest(workspace)
    result = CliRunner().invoke(app, fill(argv, workspace, tiny_checkpoint))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert fragment.lower() in result.output.lower(), result.output
    assert tree_digest(workspace) == before
