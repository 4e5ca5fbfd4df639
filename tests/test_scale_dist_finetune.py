"""Fine-tuning through DistributedDataParallel (gloo on CPU): each rank's share of a batch and
its loss scale give the single-process gradient (checked in one process, then on 2 ranks to
1e-6), and a 2-rank run killed and resumed ends with the files of an uninterrupted one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import scale_dist_finetune_worker as worker  # noqa: E402
from test_scale_distributed import spawn  # noqa: E402

from fewshot.errors import FewshotError  # noqa: E402
from fewshot.scale.dist_finetune import check_batch, rank_loss  # noqa: E402
from fewshot.scale.distributed import rank_share  # noqa: E402
from fewshot.transfer.finetune_loop import FinetuneEpochs  # noqa: E402


def _gradient(model, x, y, loss_of) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss_of(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("world,batch", [(2, 8), (3, 8), (4, 5)])
def test_rank_losses_averaged_as_ddp_does_give_the_whole_batch_gradient(world, batch):
    task, data = worker.step_task(FinetuneEpochs)
    model, x, y = task.model, data.data[:batch], data.labels[:batch]
    whole = _gradient(model, x, y, torch.nn.functional.cross_entropy)
    parts = []
    for rank in range(world):
        part = rank_share(batch, rank, world)
        loss = lambda logits, labels: rank_loss(logits, labels, batch, world)  # noqa: E731
        parts.append(_gradient(model, x[part.start : part.stop], y[part.start : part.stop], loss))
    assert sum(len(rank_share(batch, r, world)) for r in range(world)) == batch
    for name, grad in whole.items():
        averaged = sum(p[name] for p in parts) / world  # what DDP's all-reduce leaves on every rank
        torch.testing.assert_close(averaged, grad, rtol=1e-6, atol=1e-7, msg=name)
    assert sum(float(g.abs().sum()) for g in whole.values()) > 0


def test_a_batch_smaller_than_the_world_is_refused():
    with pytest.raises(FewshotError, match="--batch-size 1 cannot be shared by 2 processes"):
        check_batch(1, 2)


def test_two_ranks_take_the_single_process_step(tmp_path):
    spawn(worker.step, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks: other thread counts sum convolutions in other orders
    try:
        expected = worker.one_step(*worker.step_task(FinetuneEpochs))
    finally:
        torch.set_num_threads(threads)
    assert sum(float(g.abs().sum()) for g in expected["grads"].values()) > 0
    for rank in ranks:
        assert rank["grads"].keys() == expected["grads"].keys()
        for kind in ("grads", "params"):
            for key, value in expected[kind].items():
                torch.testing.assert_close(rank[kind][key], value, rtol=1e-6, atol=1e-6, msg=f"{kind} {key}")
        assert rank["sums"][1] == expected["sums"][1]
        assert rank["sums"][0] == pytest.approx(expected["sums"][0], rel=1e-6)


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.parent.iterdir()) if p.name.startswith(out.name)}


@pytest.mark.slow  # two 2-rank runs and a killed one: about a minute on 2 loaded cores
def test_two_rank_finetuning_resumes_to_the_uninterrupted_files(tmp_path):
    from safetensors.torch import load_file

    (tmp_path / "whole").mkdir()
    (tmp_path / "killed").mkdir()
    whole, killed = tmp_path / "whole" / "m.safetensors", tmp_path / "killed" / "m.safetensors"
    spawn(worker.finetune, str(whole), 0)
    # rank 0's crash points: started, then per epoch the checkpoint and the state
    with pytest.raises(Exception):  # noqa: B017, PT011 - the launcher reports the SIGKILL
        spawn(worker.finetune, str(killed), 4)
    assert killed.with_name(killed.name + ".state.pt").exists()
    spawn(worker.finetune, str(killed), 0)
    names = {"m.safetensors", "m.safetensors.run.json", "m.safetensors.state.pt"}
    assert set(_files(whole)) <= names | {"m.safetensors.lock"} and "m.safetensors" in _files(whole)
    a, b = load_file(whole), load_file(killed)
    assert a.keys() == b.keys()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0, msg=key)
