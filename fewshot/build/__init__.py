"""What a user typed -> the objects it names: encoders, learners, checkpoints, transforms.

Every command and the Python API build models here, so a name means the same thing
everywhere. What varies by model is declared by the model, not tested by name here:

- an encoder's constructor signature says which options it takes (``model``, ``pretrained``,
  ``device``, ...), and ``Encoder.sized_by_data`` which arguments the data fills in;
- a learner's constructor says its hyperparameters (`FewShotLearner.param_names`, with
  ``Literal`` hints as choices), ``defaults_for(encoder)`` what suits an encoder, and its
  ``kind`` whether it can reuse another learner's encoder.
"""

from __future__ import annotations

from fewshot.build.data import data_transform, embedding_source, load_data, load_for_encoder
from fewshot.build.encoders import (
    EncoderSource,
    build_encoder,
    checkpoint_source,
    encoder_parameters,
    option_flag,
    reads_images,
    sized_by_data,
    split_spec,
)
from fewshot.build.learners import build_learner, check_learner_options, rewrap
from fewshot.build.models import build_model

__all__ = [
    "EncoderSource",
    "build_encoder",
    "build_learner",
    "build_model",
    "check_learner_options",
    "checkpoint_source",
    "data_transform",
    "embedding_source",
    "encoder_parameters",
    "load_data",
    "load_for_encoder",
    "option_flag",
    "reads_images",
    "rewrap",
    "sized_by_data",
    "split_spec",
]
