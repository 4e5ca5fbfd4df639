"""User-facing errors.

Every error a user can cause (bad arguments, missing or damaged files) is a `FewshotError`.
The command line prints its message as one line and exits with code 2; library users can
catch it. Internal bugs stay ordinary exceptions so that their tracebacks are not hidden.
"""

from __future__ import annotations


class FewshotError(Exception):
    """An error caused by the user's input, with a message that says how to fix it."""


class EpisodeError(FewshotError, ValueError):
    """Impossible episode settings (ways, shots, queries) for the data at hand."""


class DataError(FewshotError):
    """A data set is missing, empty, unreadable or in the wrong format."""


class CheckpointError(FewshotError):
    """A checkpoint or saved artefact is missing, truncated, foreign or tampered with."""


class NotFittedError(FewshotError, RuntimeError):
    """`predict` was called before `fit`."""


class ModelUnavailableError(FewshotError):
    """Pretrained weights cannot be had (offline, unknown tag, missing local file)."""
