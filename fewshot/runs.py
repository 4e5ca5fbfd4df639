"""The files of a training run beside its output, the settings that define the run, and checks
on the output path made before any work starts.

A run at ``out`` (``train``: the best checkpoint; ``finetune``: the classifier) keeps
``<out>.run.json`` (its settings, then its result), ``<out>.state.pt`` (the last state, for
resuming) and ``<out>.log.csv``. A run resumes only when its recorded settings equal the new
ones; otherwise it is refused in one line that names what differs (``--restart`` starts over).
A different ``--steps`` is a different run too: extending a finished run would not end as a
run with the larger ``--steps`` from the start (a run always validates at its last step and
may keep that checkpoint; a longer one need not validate there), so a longer run starts over.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshot.errors import CheckpointError, FewshotError

RUN_FORMAT = "fewshot-run"
RUN_VERSION = 1


def check_output_file(
    path: str | os.PathLike[str], option: str = "--out", suffix: str = ".safetensors"
) -> Path:
    """`path` if a `suffix` file can be written there (`fewshot.outputs.check_writable`);
    otherwise one-line `FewshotError` naming `option`. Creates nothing that stays."""
    from fewshot.outputs import check_writable

    path = Path(path).expanduser()
    if suffix and path.suffix != suffix and not path.is_dir():
        raise FewshotError(f"{option} must end in {suffix}, got {path}")
    return check_writable(path, option)


@dataclass(frozen=True)
class RunFiles:
    """The paths of one run: its output and the files kept beside it."""

    out: Path

    def _beside(self, ending: str) -> Path:
        return self.out.with_name(self.out.name + ending)

    @property
    def state(self) -> Path:
        return self._beside(".state.pt")

    @property
    def log(self) -> Path:
        return self._beside(".log.csv")

    @property
    def summary(self) -> Path:
        return self._beside(".run.json")

    def remove_litter(self) -> None:
        """Temporary files an atomic write left when the process was killed mid-write."""
        for path in (self.out, self.state, self.log, self.summary):
            for tmp in path.parent.glob(f".{path.name}.*.tmp"):
                tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        """Start over: the state goes first, so a kill part-way never resumes the old run."""
        for path in (self.state, self.log, self.out, self.summary):
            path.unlink(missing_ok=True)

    def exists(self) -> bool:
        return any(p.exists() for p in (self.out, self.state, self.log, self.summary))


def json_safe(value: Any) -> Any:
    """`value` as JSON would give it back (tuples become lists, NaN/inf become None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def data_description(data: Any) -> dict[str, Any] | None:
    """What identifies a labelled data set in a run's settings, with a digest of its contents."""
    import torch

    if data is None:
        return None
    digest = hashlib.sha256()
    for tensor in (data.data, data.labels):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    info = {k: v for k, v in (data.info or {}).items() if k != "preprocessing"}
    return json_safe(
        {
            "info": info,
            "items": len(data.labels),
            "classes": list(data.class_names),
            "shape": list(data.data.shape[1:]),
            "sha256": digest.hexdigest(),
        }
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def differences(old: dict, new: dict, limit: int = 4) -> str:
    """The settings that differ, as ``name old -> new, ...`` (at most `limit` named)."""
    a, b = _flatten(old), _flatten(new)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    # a data set that differs differs in its digest too; name the digest only when alone
    shown = [k for k in keys if not k.endswith(".sha256")] or keys
    text = ", ".join(
        f"{k.removeprefix('train.').removeprefix('finetune.')} {_short(a.get(k))} -> {_short(b.get(k))}"
        for k in shown[:limit]
    )
    return text + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def read_summary(files: RunFiles) -> dict | None:
    """The run's ``run.json`` document, None when there is none."""
    if not files.summary.exists():
        return None
    try:
        doc = json.loads(files.summary.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read {files.summary} ({err}); pass --restart to start the run over"
        ) from err
    return doc if isinstance(doc, dict) else None


def check_same_run(files: RunFiles, settings: dict, command: str) -> None:
    """Refuse to resume (or overwrite) a run at ``files.out`` whose settings are not `settings`.

    Raises:
        FewshotError: one line naming what differs and saying to pass ``--restart``.
    """
    summary = read_summary(files)
    if summary is None:
        if files.exists():
            raise FewshotError(
                f"--out {files.out} already holds files that are not from a resumable `fewshot {command}` "
                "run (an older version, or another program); pass --restart to overwrite them, "
                "or choose another --out"
            )
        return
    recorded = summary.get("settings") if summary.get("format") == RUN_FORMAT else None
    if recorded is None:
        raise FewshotError(
            f"{files.summary} does not record the run's settings (written by an older fewshot); "
            "pass --restart to start over, or choose another --out"
        )
    if recorded != settings:
        raise FewshotError(
            f"--out {files.out} holds a run with other settings ({differences(recorded, settings)}); "
            "pass --restart to start over, or choose another --out"
        )


@contextmanager
def open_run(out: Path, settings: dict, resume: bool, command: str, what: str) -> Iterator[RunFiles]:
    """Hold the lock of the run at `out` for the block, ready to train.

    Removes what a killed atomic write left, resumes only a run with these `settings` (or, with
    ``resume=False``, deletes it) and marks ``run.json`` as running; the block ends the run
    with `finish_run`. Crash point ``<command>.started`` follows the mark.
    """
    from fewshot.faults import crash_point
    from fewshot.fileio import atomic_write_bytes
    from fewshot.locking import exclusive_lock

    files = RunFiles(out)
    with exclusive_lock(out, what):
        files.remove_litter()
        if resume:
            check_same_run(files, settings, command)
        else:
            files.clear()
        atomic_write_bytes(files.summary, summary_document(settings, "running"))
        crash_point(f"{command}.started")
        yield files


def finish_run(files: RunFiles, settings: dict, command: str, **fields: Any) -> None:
    """Mark the run done in ``run.json`` with its result `fields` (crash point ``<command>.done``)."""
    from fewshot.faults import crash_point
    from fewshot.fileio import atomic_write_bytes

    atomic_write_bytes(files.summary, summary_document(settings, "done", **fields))
    crash_point(f"{command}.done")


def summary_document(settings: dict, status: str, **fields: Any) -> bytes:
    """``run.json``: the format, ``status`` (``running`` or ``done``), the settings, and `fields`."""
    doc = {"format": RUN_FORMAT, "version": RUN_VERSION, "status": status, **json_safe(fields)}
    doc["settings"] = settings
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode()


def save_state(path: Path, state: dict[str, Any], device: Any) -> None:
    """Write a resumable state (tensors, optimiser states, counters) atomically, with the RNGs.

    Read back with `load_state` (``torch.load(weights_only=True)``: never arbitrary pickles).
    """
    import io

    import torch

    from fewshot.fileio import atomic_write_bytes

    state = {**state, "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path, device: Any, restore: Any) -> dict[str, Any]:
    """The state at `path`; ``restore(state)`` loads it into the model and optimiser, then the
    RNGs are restored. Any damage is one `CheckpointError` line saying to pass ``--restart``."""
    import torch

    try:
        state = torch.load(path, map_location=device, weights_only=True)
        restore(state)
        torch.set_rng_state(state["torch_rng"].cpu())  # dropout, random augmentation
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        return state
    except Exception as err:  # noqa: BLE001 - any damage to the state file means no resume
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot resume from {path} ({first}); pass --restart to start over") from err
