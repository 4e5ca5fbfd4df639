"""Copy a trained checkpoint into the package, re-written by the current checkpoint writer.

The weights are copied unchanged; the metadata gains what newer writers record (the weights'
SHA-256, the preprocessing record) so the shipped file passes every load-time check.

    python scripts/ship_checkpoint.py runs/protonet-vinyals/model.safetensors \
        fewshot/models/protonet-conv4-omniglot.safetensors
"""

from __future__ import annotations

import sys

import torch

from fewshot.checkpoints import load_learner, save_checkpoint
from fewshot.preprocessing import preprocessing_from_metadata


def main(source: str, target: str) -> None:
    learner, meta = load_learner(source)
    meta.setdefault("preprocessing", preprocessing_from_metadata(meta).to_dict())
    for key in ("format", "version", "toolkit_version", "weights_sha256"):
        meta.pop(key, None)
    save_checkpoint(target, learner, meta)
    reloaded, _ = load_learner(target)
    for name, tensor in learner.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
    print(f"{target}: weights identical to {source}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
