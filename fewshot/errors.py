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


def check_format_header(document: object, path: object, fmt: str, version: int, kind: str) -> dict:
    """`document` as a dict when it carries ``format == fmt`` and ``version == version``.

    Raises:
        CheckpointError: a foreign document (``{path} is not a {kind}``) or another format version.
    """
    if not isinstance(document, dict) or document.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {kind}")
    if document.get("version") != version:
        raise CheckpointError(
            f"{path} has {kind} format version {document.get('version')!r}; "
            f"this toolkit reads version {version}"
        )
    return document
