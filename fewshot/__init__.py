"""fewshot: few-shot and zero-shot learning with one episodic sampler and one encoder interface.

``import fewshot`` is light: heavy modules (torch models, faiss, open_clip) load on first use.
"""

from __future__ import annotations

from fewshot.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "EpisodeSampler": "fewshot.sampling",
    "Episode": "fewshot.sampling",
    "EpisodeFile": "fewshot.sampling",
    "Encoder": "fewshot.encoders.base",
    "create_encoder": "fewshot.encoders",
    "create_learner": "fewshot.learners",
    "ProtoNet": "fewshot.learners.protonet",
    "MAML": "fewshot.learners.maml",
    "ClipEncoder": "fewshot.encoders.clip",
    "ZeroShotClassifier": "fewshot.zeroshot.classifier",
    "label_images": "fewshot.zeroshot.labelling",
    "load_dataset": "fewshot.data.loading",
    "evaluate": "fewshot.evaluation",
    "EvalResult": "fewshot.evaluation",
    "train": "fewshot.training",
    "TrainConfig": "fewshot.training",
    "load_learner": "fewshot.model_loading",
    "save_checkpoint": "fewshot.checkpoints",
    "load_omniglot": "fewshot.data.omniglot",
    "LabeledTensors": "fewshot.data.tensors",
    "FewshotError": "fewshot.errors",
    "DataError": "fewshot.errors",
    "EpisodeError": "fewshot.errors",
    "CheckpointError": "fewshot.errors",
    "NotFittedError": "fewshot.errors",
    "ModelUnavailableError": "fewshot.errors",
    "EmbeddingIndex": "fewshot.index",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = ["__version__", *_LAZY]
