"""Channels-last memory for convolutional training on CPU, chosen by a timing check.

oneDNN's CPU convolutions are often faster on NHWC tensors (the shipped Conv-4, forward and
backward at batch 64 on 28 px: 1.3-1.5x on a 2-core AMD EPYC with AVX-512) but not on every
CPU, so it is never assumed: `prefer_channels_last` times a few training steps both ways on a
copy of the model and keeps channels-last only when it is clearly faster. The answer is cached
per machine (CPU model, torch version and threads), architecture and input shape in
``<cache>/cpu-layout.json``, so one machine always makes the same choice and a seeded run gives
the same numbers every time. ``FEWSHOT_CHANNELS_LAST=1`` or ``0`` overrides the check.

Only the model is converted (`torch.nn.Module.to(memory_format=...)`); contiguous input batches
then run the channels-last kernels. Checkpoints are written contiguous either way.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

ENV_VAR = "FEWSHOT_CHANNELS_LAST"
MIN_SPEEDUP = 1.1  # channels-last must save at least ~10% of a step to be chosen
MIN_PIXELS = 16 * 16  # smaller inputs (test-sized images) are not worth a check


def _cache_file() -> Path:
    from fewshot.data.paths import default_cache_dir

    return default_cache_dir() / "cpu-layout.json"


def cpu_info() -> dict[str, Any]:
    """CPU model and flags from /proc/cpuinfo (the vector extensions that decide speed listed
    apart), or what `platform` says elsewhere."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    vector = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "f16c"))]
    return {"cpu_model": model, "cpu_vector_flags": vector, "cpu_flags": flags}


def _key(model: torch.nn.Module, shape: tuple[int, ...]) -> str:
    layout = ";".join(f"{n}:{tuple(p.shape)}" for n, p in model.named_parameters())
    arch = hashlib.sha256(f"{type(model).__name__}|{layout}".encode()).hexdigest()[:16]
    threads = torch.get_num_threads()
    return f"{cpu_info()['cpu_model']}|torch {torch.__version__}|{threads} threads|{arch}|{shape}"


def step_seconds(model: torch.nn.Module, x: torch.Tensor, steps: int = 4, bf16: bool = False) -> float:
    """Median seconds of a forward (under bfloat16 autocast if ``bf16``) + backward of
    ``model`` on ``x`` (after one warm-up)."""
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        out.float().sum().backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def measure(model: torch.nn.Module, sample: torch.Tensor) -> float:
    """How many times faster a training step of a copy of ``model`` runs channels-last on
    ``sample`` ``(n, C, H, W)`` (> 1: faster). ``model`` itself is not touched."""
    plain = copy.deepcopy(model).cpu().train()
    last = copy.deepcopy(model).cpu().train().to(memory_format=torch.channels_last)
    return speedup(plain, last, sample)


def speedup(
    base: torch.nn.Module, option: torch.nn.Module, sample: torch.Tensor, bf16: bool = False
) -> float:
    """How many times faster a training step of ``option`` (under bfloat16 autocast if
    ``bf16``) runs than one of ``base``, on zeros shaped like ``sample``: the lower of two
    measurements; 1.0 for a model this check cannot train (no gradient, no kernel)."""
    x = torch.zeros_like(sample, device="cpu")  # batches stay contiguous in training too
    with torch.random.fork_rng():  # dropout in the models must not move the caller's stream
        try:
            ratios = [step_seconds(base, x) / step_seconds(option, x, bf16=bf16) for _ in range(2)]
        except RuntimeError:
            return 1.0
    return min(ratios)


def prefer_channels_last(model: torch.nn.Module, sample: torch.Tensor, device: torch.device | str) -> bool:
    """Whether training ``model`` on batches like ``sample`` ``(n, C, H, W)`` on ``device``
    should use channels-last (see the module docstring)."""
    return timed_choice("", ENV_VAR, MIN_SPEEDUP, lambda: measure(model, sample), model, sample, device)


def timed_choice(kind, env_var, min_speedup, timing, model, sample, device) -> bool:
    """Whether a CPU speed option is faster here: ``env_var`` forces it (1/0); otherwise
    ``timing()`` (how many times faster the option runs) is measured once per machine, model
    and input shape (the key starts with ``kind``) and cached. Never on other devices, on
    inputs that are not images, or on images too small to pay for the check."""
    if torch.device(device).type != "cpu" or sample.dim() != 4:
        return False
    forced = os.environ.get(env_var, "").strip().lower()
    if forced in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        return forced in ("1", "true", "yes", "on")
    if sample.shape[-1] * sample.shape[-2] < MIN_PIXELS:
        return False
    key = kind + _key(model, tuple(sample.shape))
    cached = _read_cache()
    if key not in cached:
        cached[key] = round(timing(), 3)
        _write_cache(cached)
    return cached[key] >= min_speedup


def _read_cache() -> dict[str, float]:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_cache(data: dict[str, float]) -> None:
    from fewshot.fileio import atomic_write_bytes

    with contextlib.suppress(OSError):  # a read-only cache only costs the check again next time
        atomic_write_bytes(_cache_file(), json.dumps(data, indent=1, sort_keys=True).encode())


__all__ = ["ENV_VAR", "measure", "prefer_channels_last", "speedup", "step_seconds", "timed_choice"]
