"""Shared fixtures: tiny synthetic data, and the shared Omniglot copy when it is present."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from fewshot.data.tensors import LabeledTensors

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# No timing check decides a memory layout inside the tests (nor in their subprocesses): a test's
# numbers must not depend on how busy the machine is. tests/test_cpu_layout.py sets it itself.
os.environ.setdefault("FEWSHOT_CHANNELS_LAST", "0")


@pytest.fixture
def omniglot_dir() -> Path:
    """The data directory holding omniglot/ (``$FEWSHOT_DATA_DIR`` or ``../shared/data``)."""
    candidates = [os.environ.get("FEWSHOT_DATA_DIR"), SHARED_DATA]
    for candidate in candidates:
        if candidate and (Path(candidate) / "omniglot" / "alphabets.tsv").exists():
            return Path(candidate)
    pytest.skip("Omniglot is not available (set FEWSHOT_DATA_DIR)")


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> content digest (``dir``, or ``link:`` + target) of everything under `root`."""
    seen: dict[str, str] = {}
    for here, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(here, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                seen[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                seen[rel] = "dir"
            else:
                seen[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def make_blobs(n_classes: int = 10, per_class: int = 20, dim: int = 16, spread: float = 0.1, seed: int = 0):
    """Well-separated Gaussian classes: ``LabeledTensors`` with data ``(n_classes*per_class, dim)``."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 3
    data = centres.repeat_interleave(per_class, 0) + spread * torch.randn(
        n_classes * per_class, dim, generator=g
    )
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return LabeledTensors(data, labels, [f"class{i}" for i in range(n_classes)], {"dataset": "blobs"})


@pytest.fixture
def blobs() -> LabeledTensors:
    return make_blobs()


def synthetic_images(n_classes: int, per_class: int, seed: int = 0, side: int = 28) -> LabeledTensors:
    """Images ``(n, 1, side, side)`` in [0, 1]: a fixed random pattern per class plus noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(n_classes, 1, side, side, generator=g)
    data = (0.8 * patterns.repeat_interleave(per_class, 0)) + 0.2 * torch.rand(
        n_classes * per_class, 1, side, side, generator=g
    )
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return LabeledTensors(data, labels, [f"c{i}" for i in range(n_classes)], {"dataset": "synthetic"})


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A Conv-4 ProtoNet trained for a few steps on synthetic images, saved as a checkpoint.

    Its preprocessing record is Omniglot's (grey, 28x28, inverted) so `predict` can be tested.
    """
    from fewshot.checkpoints import learner_metadata
    from fewshot.encoders import create_encoder
    from fewshot.learners.protonet import ProtoNet
    from fewshot.training import TrainConfig, train

    torch.manual_seed(0)
    learner = ProtoNet(create_encoder("conv4", in_channels=1, hidden=8, image_size=28))
    meta = learner_metadata("protonet", "conv4", learner)
    meta["preprocessing"] = {"image_size": 28, "channels": 1, "invert": True}
    out = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    config = TrainConfig(ways=4, shots=1, queries=2, steps=6, val_every=3, val_ways=3, val_queries=3)
    config.val_episodes, config.device = 5, "cpu"
    train(learner, synthetic_images(10, 8), out, config, synthetic_images(4, 8, seed=1), meta, progress=False)
    return out


def _with_one_thread(get_threads, set_threads):
    """Run the test with a library's thread count at 1, then restore it."""
    threads = get_threads()
    set_threads(1)
    yield
    set_threads(threads)


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread avoids oversubscribing a shared CPU."""
    yield from _with_one_thread(torch.get_num_threads, torch.set_num_threads)


@pytest.fixture
def one_faiss_thread():
    """Tiny indexes: FAISS's OpenMP threads only add contention on a shared machine."""
    import faiss

    yield from _with_one_thread(faiss.omp_get_max_threads, faiss.omp_set_num_threads)


@pytest.fixture
def cpu_check_cache(tmp_path, monkeypatch) -> Path:
    """The CPU speed checks' cache file (`fewshot.cpu_layout`, `fewshot.cpu_bf16`) in a fresh
    folder, with neither override variable set."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FEWSHOT_CHANNELS_LAST", raising=False)
    monkeypatch.delenv("FEWSHOT_CPU_BF16", raising=False)
    return tmp_path / "fewshot" / "cpu-layout.json"
