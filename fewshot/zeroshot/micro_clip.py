"""Micro CLIP: a tiny CLIP trained on synthetic coloured shapes, shipped for offline use and tests.

The model itself is ``ClipEncoder("micro-clip")`` (`fewshot.encoders.clip`: architecture
``fewshot/models/micro-clip.json``, fp16 weights ``fewshot/models/micro-clip.safetensors``).
Its training script and the synthetic shapes live outside the library's import graph, in
`fewshot.tools.micro_clip_train` and `fewshot.tools.shapes`; this module keeps their old names
(``make_folder``, ``CLASS_NAMES``, ``train``, ...) and the documented entry point, loading them
on first use.

Train a micro CLIP (about a minute on a CPU; writes ``./micro-clip.safetensors``, or
``--out FILE``; ``--overwrite-shipped`` regenerates the shipped weights in the package)::

    python -m fewshot.zeroshot.micro_clip train

Make a folder of synthetic images to try ``fewshot label`` / ``fewshot index`` offline::

    python -m fewshot.zeroshot.micro_clip make-folder shapes/ --per-class 20
"""

from __future__ import annotations

from fewshot.lazy import lazy_attributes

_SHAPES = ("COLOURS", "SHAPES", "CLASS_NAMES", "draw_shape", "make_folder", "synthetic_batch")
_TRAINING = ("DEFAULT_OUT", "train", "zero_shot_accuracy", "main")
_LAZY = {
    **dict.fromkeys(_SHAPES, "fewshot.tools.shapes"),
    **dict.fromkeys(_TRAINING, "fewshot.tools.micro_clip_train"),
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
__all__ = [*_LAZY]

if __name__ == "__main__":
    __getattr__("main")()
