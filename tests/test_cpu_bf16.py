"""bfloat16 autocast on CPU (`fewshot.cpu_bf16`): chosen by a timing check cached per machine
and layout, never touching the model it times, overridable; a continual run in bf16 learns
what the float32 run learns, evaluates in float32, and keeps its precision when resumed."""

from __future__ import annotations

import json

import torch
from continual_streams import encoder, squares

from fewshot import cpu_bf16, cpu_layout
from fewshot.continual import STRATEGIES
from fewshot.continual.base import TrainSettings
from fewshot.continual.scenarios import class_incremental
from fewshot.continual.trainer import ContinualRun, train_continual
from fewshot.encoders.conv4 import Conv4


def test_the_check_is_cached_apart_for_each_layout_and_read_back(cpu_check_cache, monkeypatch):
    model, sample = Conv4(in_channels=1, hidden=8, image_size=28), torch.rand(4, 1, 28, 28)
    monkeypatch.setattr(cpu_bf16, "measure", lambda m, s: 1.9)
    assert cpu_bf16.prefer_bf16(model, sample, "cpu")
    monkeypatch.setattr(cpu_bf16, "measure", lambda m, s: 1.1)  # below MIN_SPEEDUP
    assert not cpu_bf16.prefer_bf16(model.to(memory_format=torch.channels_last), sample, "cpu")
    kinds = {k.split("|")[0]: v for k, v in json.loads(cpu_check_cache.read_text()).items()}
    assert kinds == {"bf16 contiguous": 1.9, "bf16 channels-last": 1.1}

    def never(m, s):
        raise AssertionError("measured again")

    monkeypatch.setattr(cpu_bf16, "measure", never)
    assert cpu_bf16.prefer_bf16(model.to(memory_format=torch.contiguous_format), sample, "cpu")


def test_no_check_where_it_cannot_pay_and_the_variable_overrides(cpu_check_cache, monkeypatch):
    model = Conv4(in_channels=1, hidden=8, image_size=28)
    monkeypatch.setattr(cpu_bf16, "measure", lambda m, s: 9.0)
    assert not cpu_bf16.prefer_bf16(model, torch.rand(4, 1, 8, 8), "cpu")  # tiny images
    assert not cpu_bf16.prefer_bf16(model, torch.rand(4, 1, 28, 28), "cuda")
    assert not cpu_check_cache.exists()
    monkeypatch.setenv(cpu_bf16.ENV_VAR, "0")
    assert not cpu_bf16.prefer_bf16(model, torch.rand(4, 1, 28, 28), "cpu")
    monkeypatch.setenv(cpu_bf16.ENV_VAR, "1")
    assert cpu_bf16.prefer_bf16(model, torch.rand(4, 1, 8, 8), "cpu")


def test_measuring_leaves_the_model_and_the_random_stream_as_they_were():
    model = Conv4(in_channels=1, hidden=8, image_size=28).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sample = torch.rand(4, 1, 28, 28)
    state = torch.random.get_rng_state()
    assert cpu_bf16.measure(model, sample) > 0 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.dtype == torch.float32 for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), state)


def _run(monkeypatch, precision: str, strategy: str = "replay") -> tuple[ContinualRun, dict]:
    monkeypatch.setenv(cpu_layout.ENV_VAR, "0")
    stream = class_incremental(squares(6, 24, 0), squares(6, 10, 1), 3, seed=0)
    settings = TrainSettings(epochs=2, lr=0.05, batch_size=8, precision=precision)
    options = {"memory": 12} if strategy == "replay" else {}
    task = ContinualRun(stream, STRATEGIES.get(strategy)(**options), encoder(0), settings, seed=0)
    return task, train_continual(task, None, {}, progress=False)


def test_a_bf16_run_learns_what_the_fp32_run_learns_and_its_weights_stay_float32(monkeypatch):
    plain, plain_report = _run(monkeypatch, "fp32")
    bf16, bf16_report = _run(monkeypatch, "bf16")
    assert (plain_report["precision"], bf16_report["precision"]) == ("fp32", "bf16")
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    final = torch.tensor(bf16_report["accuracy_matrix"][-1])
    assert final.mean() > 0.5  # it learned: chance over 6 classes is 0.17
    torch.testing.assert_close(final, torch.tensor(plain_report["accuracy_matrix"][-1]), atol=0.15, rtol=0)
    assert bf16_report["accuracy_matrix"] != plain_report["accuracy_matrix"]  # bf16 did run


def test_the_same_seed_gives_the_same_bf16_numbers_and_a_resumed_run_keeps_bf16(monkeypatch):
    first, report = _run(monkeypatch, "bf16")
    assert _run(monkeypatch, "bf16")[1]["accuracy_matrix"] == report["accuracy_matrix"]
    state = first.training_state()
    settings = TrainSettings(epochs=2, lr=0.05, batch_size=8, precision="fp32")
    fresh = ContinualRun(first.stream, STRATEGIES.get("replay")(memory=12), encoder(0), settings, seed=0)
    fresh.restore(state)
    assert fresh.settings.precision == "bf16"


def test_auto_asks_the_check_and_frozen_encoders_train_in_fp32(cpu_check_cache, monkeypatch):
    monkeypatch.setenv(cpu_layout.ENV_VAR, "0")
    monkeypatch.setenv(cpu_bf16.ENV_VAR, "1")
    assert _run(monkeypatch, "auto")[1]["precision"] == "bf16"
    monkeypatch.setenv(cpu_bf16.ENV_VAR, "0")
    assert _run(monkeypatch, "auto")[1]["precision"] == "fp32"
    monkeypatch.setenv(cpu_bf16.ENV_VAR, "1")
    assert _run(monkeypatch, "auto", "simplecil")[1]["precision"] == "fp32"
