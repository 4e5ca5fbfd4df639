"""Channels-last on CPU (`fewshot.cpu_layout`): chosen by a timing check cached per machine,
never touching the model it times, overridable, and a continual run trained channels-last
gives the same results as a contiguous one and keeps its layout when resumed."""

from __future__ import annotations

import json

import torch
from continual_streams import encoder, squares

from fewshot import cpu_layout
from fewshot.continual import STRATEGIES
from fewshot.continual.base import TrainSettings
from fewshot.continual.scenarios import class_incremental
from fewshot.continual.trainer import ContinualRun, train_continual
from fewshot.encoders.conv4 import Conv4


def test_the_check_is_measured_once_per_machine_and_shape_then_read_back(cpu_check_cache, monkeypatch):
    model, sample = Conv4(in_channels=1, hidden=8, image_size=28), torch.rand(4, 1, 28, 28)
    monkeypatch.setattr(cpu_layout, "measure", lambda m, s: 1.5)
    assert cpu_layout.prefer_channels_last(model, sample, "cpu")
    ((key, ratio),) = json.loads(cpu_check_cache.read_text()).items()
    assert ratio == 1.5 and "(4, 1, 28, 28)" in key and f"torch {torch.__version__}" in key

    def never(m, s):
        raise AssertionError("measured again")

    monkeypatch.setattr(cpu_layout, "measure", never)
    assert cpu_layout.prefer_channels_last(model, sample, "cpu")  # from the cache
    monkeypatch.setattr(cpu_layout, "measure", lambda m, s: 1.02)  # another shape: not faster enough
    assert not cpu_layout.prefer_channels_last(model, torch.rand(8, 1, 28, 28), "cpu")


def test_no_check_where_it_cannot_pay_and_the_variable_overrides(cpu_check_cache, monkeypatch):
    model = Conv4(in_channels=1, hidden=8, image_size=28)
    monkeypatch.setattr(cpu_layout, "measure", lambda m, s: 9.0)
    assert not cpu_layout.prefer_channels_last(model, torch.rand(4, 16), "cpu")  # not images
    assert not cpu_layout.prefer_channels_last(model, torch.rand(4, 1, 8, 8), "cpu")  # tiny images
    assert not cpu_layout.prefer_channels_last(model, torch.rand(4, 1, 28, 28), "cuda")
    assert not cpu_check_cache.exists()
    monkeypatch.setenv(cpu_layout.ENV_VAR, "1")
    assert cpu_layout.prefer_channels_last(model, torch.rand(4, 1, 8, 8), "cpu")
    monkeypatch.setenv(cpu_layout.ENV_VAR, "0")
    assert not cpu_layout.prefer_channels_last(model, torch.rand(4, 1, 28, 28), "cpu")


def test_measuring_leaves_the_model_and_the_random_stream_as_they_were():
    model = Conv4(in_channels=1, hidden=8, image_size=28).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sample = torch.rand(4, 1, 28, 28)
    state = torch.random.get_rng_state()
    ratio = cpu_layout.measure(model, sample)
    assert ratio > 0 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm too
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), state)
    assert next(model.parameters()).is_contiguous()


def _run(monkeypatch, layout: str) -> tuple[ContinualRun, dict]:
    monkeypatch.setenv(cpu_layout.ENV_VAR, layout)
    stream = class_incremental(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    # fp32 fixed: under `auto` each layout makes its own bf16 timing check, and a run in bf16
    # beside one in fp32 would compare precisions, not layouts
    settings = TrainSettings(epochs=2, lr=0.05, batch_size=8, precision="fp32")
    task = ContinualRun(stream, STRATEGIES.get("replay")(memory=12), encoder(0), settings, seed=0)
    return task, train_continual(task, None, {}, progress=False)


def _conv_is_channels_last(task: ContinualRun) -> bool:
    conv = next(p for p in task.model.parameters() if p.dim() == 4 and p.shape[1] > 1)  # C = 1: both
    return conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_a_continual_run_channels_last_matches_the_contiguous_one_and_resumes_in_its_layout(monkeypatch):
    plain, plain_report = _run(monkeypatch, "0")
    last, last_report = _run(monkeypatch, "1")
    assert _conv_is_channels_last(last) and not _conv_is_channels_last(plain)
    assert last_report["channels_last"] is True and plain_report["channels_last"] is False
    matrix = torch.tensor(last_report["accuracy_matrix"])
    torch.testing.assert_close(matrix, torch.tensor(plain_report["accuracy_matrix"]), atol=0.1, rtol=0)
    state = last.training_state()
    monkeypatch.setenv(cpu_layout.ENV_VAR, "0")  # the check would now say contiguous ...
    fresh = ContinualRun(last.stream, STRATEGIES.get("replay")(memory=12), encoder(0), last.settings, seed=0)
    assert not fresh.channels_last
    fresh.restore(state)  # ... but the resumed run keeps the layout it was trained in
    assert fresh.channels_last and _conv_is_channels_last(fresh)


def test_a_model_the_check_cannot_train_counts_as_not_faster():
    frozen = Conv4(in_channels=1, hidden=8, image_size=28).requires_grad_(False)
    assert cpu_layout.measure(frozen, torch.rand(4, 1, 28, 28)) == 1.0


def test_a_continual_run_makes_the_check_on_its_encoder_and_caches_it(cpu_check_cache):
    stream = class_incremental(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    settings = TrainSettings(epochs=1, lr=0.05, batch_size=8)
    task = ContinualRun(stream, STRATEGIES.get("naive")(), encoder(0), settings, seed=0)
    ratio = next(iter(json.loads(cpu_check_cache.read_text()).values()))
    assert ratio > 0 and task.channels_last == (ratio >= cpu_layout.MIN_SPEEDUP)
    assert train_continual(task, None, {}, progress=False)["channels_last"] == task.channels_last
