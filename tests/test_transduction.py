"""Transduction in the learner contract: every registered EMBEDDING learner that says it is
inductive (``transductive = False``) scores each query on its own, and the transductive ones
say so (their scores do depend on the other queries); `fewshot eval` and `fewshot compare`
report which methods are transductive."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fewshot_cli.app import app
from typer.testing import CliRunner

from fewshot.data.embeddings import save_embeddings
from fewshot.encoders import create_encoder
from fewshot.encoders.base import IdentityEncoder
from fewshot.learners import LEARNERS, create_learner
from fewshot.learners.base import EMBEDDING, FewShotLearner

pytestmark = pytest.mark.usefixtures("one_thread")

EMBEDDING_LEARNERS = [n for n in LEARNERS.names() if LEARNERS.get(n).kind == EMBEDDING]
FAST = {"tim": {"steps": 50, "lr": 1e-2}}


class TextIdentity(IdentityEncoder):
    """Features in, and a deterministic text tower for the learners that read class names."""

    logit_scale = 10.0

    def encode_text(self, texts):
        seeds = [len(t) * 7919 + ord(t[-1]) for t in texts]
        rows = [torch.randn(self.embed_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def task(learner, seed: int = 0):
    """9 support items and 15 queries of 3 classes, shaped for the learner's encoder."""
    g = torch.Generator().manual_seed(seed)
    shape = (16,) if learner.encoder.input_size is None else tuple(learner.encoder.input_size)
    means = torch.rand(3, *shape, generator=g)
    support = means.repeat_interleave(3, 0) + 0.3 * torch.rand(9, *shape, generator=g)
    query = means.repeat_interleave(5, 0) + 0.3 * torch.rand(15, *shape, generator=g)
    return support, torch.arange(3).repeat_interleave(3), query


def build(name: str) -> FewShotLearner:
    """The learner with an encoder it accepts: a small Conv-4 on images, or features as they are
    for those that read class names (a text tower) and for transductive ones (so that the
    queries differ enough for their joint scoring to show)."""
    cls = LEARNERS.get(name)
    if cls.needs_clip_towers:  # prompt tuning: a (random-weight) micro-CLIP
        from clip_learners import clip_learner

        return clip_learner(name).eval()
    if cls.uses_class_names or cls.transductive:
        learner = create_learner(name, TextIdentity(16), **FAST.get(name, {}))
        if cls.uses_class_names:
            learner.set_class_names(["ant", "bee", "cat"])
        return learner.eval()
    torch.manual_seed(0)
    encoder = create_encoder("conv4", in_channels=1, hidden=8, image_size=28)
    return create_learner(name, encoder, **FAST.get(name, {})).eval()


def query_dependence(learner: FewShotLearner, support, labels, query) -> float:
    """How much a query's logits move when the other queries change: the largest difference
    between scoring all queries at once and scoring a permuted subset of them."""
    learner.fit(support, labels)
    with torch.no_grad():
        full = learner.logits(query)
        order = torch.randperm(query.shape[0], generator=torch.Generator().manual_seed(1))
        largest = 0.0
        for chosen in (order, order[:7], order[7:9]):
            part = learner.logits(query[chosen])
            largest = max(largest, float((part - full[chosen]).abs().max()))
    return largest


@pytest.mark.parametrize("name", EMBEDDING_LEARNERS)
def test_inductive_learners_score_each_query_alone_and_transductive_ones_are_flagged(name):
    learner = build(name)
    assert isinstance(learner.transductive, bool)
    support, labels, query = task(learner)
    moved = query_dependence(learner, support, labels, query)
    if learner.transductive:
        assert moved > 1e-3, f"{name} says it is transductive but ignores the other queries"
    else:
        assert moved < 1e-4, f"{name} is declared inductive but its logits depend on the other queries"


class ReadsOtherQueries(FewShotLearner):
    """An inductive-declared learner that centres on the query mean: the check must catch it."""

    kind = EMBEDDING

    def __init__(self, encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.prototypes_ = None

    def _fit_embeddings(self, z, y):
        self.prototypes_ = torch.stack([z[y == c].mean(0) for c in range(int(y.max()) + 1)])
        return self

    def logits_embeddings(self, z):
        return -torch.cdist(z - z.mean(0), self.prototypes_ - z.mean(0)) - z.mean()


def test_the_check_catches_an_inductive_learner_that_reads_other_queries():
    learner = ReadsOtherQueries(IdentityEncoder(16))
    support, labels, query = task(learner)
    assert not learner.transductive and query_dependence(learner, support, labels, query) > 1e-3


# -- reports -----------------------------------------------------------------------------------


@pytest.fixture
def features(tmp_path):
    """An embedding file: 4 well-separated Gaussian classes of 10 items in 8 dimensions."""
    rng = np.random.default_rng(0)
    means = 4 * rng.standard_normal((4, 8))
    vectors = np.concatenate([m + rng.standard_normal((10, 8)) for m in means]).astype(np.float32)
    labels = np.repeat(np.arange(4), 10)
    return save_embeddings(tmp_path / "features.npz", np.abs(vectors), labels, ["a", "b", "c", "d"])


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_eval_reports_a_transductive_method(features):
    common = ["eval", "--encoder", "identity", "--dataset", features, "--subset", "all", "--ways", 3]
    common += ["--shots", 1]
    common += ["--queries", 4, "--episodes", 6, "--device", "cpu"]
    report = json.loads(invoke(*common, "--method", "tim", "--json").stdout)
    assert report["method"] == "tim" and report["transductive"] is True
    assert report["accuracy"] > 0.6 and report["episodes"] == 6  # chance: 1/3
    assert json.loads(invoke(*common, "--method", "protonet", "--json").stdout)["transductive"] is False
    assert "transductive" in invoke(*common, "--method", "bd-cspn").stdout


def test_compare_marks_the_transductive_methods(features):
    common = ["compare", "--encoder", "identity", "--dataset", features, "--ways", 3, "--shots", "1,2"]
    common += ["--episodes", 4, "--device", "cpu", "--methods", "protonet,bd-cspn,laplacianshot"]
    rows = json.loads(invoke(*common, "--json").stdout)
    flags = {(r["method"], r["transductive"]) for r in rows}
    assert flags == {("protonet", False), ("bd-cspn", True), ("laplacianshot", True)}
    table = invoke(*common).stdout
    assert "bd-cspn *" in table and "laplacianshot *" in table and "protonet *" not in table
    assert "* transductive" in table
