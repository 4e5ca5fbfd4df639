"""Prompt templates: how a class name becomes the sentences CLIP embeds.

A template is a string with one ``{}`` where the class name goes. Named sets:

- ``imagenet``: the 80 ImageNet templates of the CLIP paper (from open_clip at run time).
- ``simple`` (the default): open_clip's 7-template subset from the CLIP prompt-engineering notebook.
- ``photo``: ``a photo of a {}.``
- ``name``: the bare class name.

Or a text file: one template per line, each with exactly one ``{}``; blank lines and lines
starting with ``#`` are ignored.
"""

from __future__ import annotations

from pathlib import Path

from fewshot.errors import FewshotError

TEMPLATE_SETS = ("simple", "imagenet", "photo", "name")
DEFAULT_TEMPLATES = "simple"


def _open_clip_set(name: str) -> list[str]:
    from open_clip import zero_shot_metadata as meta

    source = meta.OPENAI_IMAGENET_TEMPLATES if name == "imagenet" else meta.SIMPLE_IMAGENET_TEMPLATES
    # open_clip stores callables; calling one with "{}" gives the format string back.
    return [t("{}") if callable(t) else str(t) for t in source]


def check_template(template: str, where: str = "template") -> str:
    if template.count("{}") != 1:
        raise FewshotError(f"{where} {template!r} must contain exactly one '{{}}' where the class name goes")
    return template


def load_templates(spec: str | list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Templates from a set name, a file path, or a list of strings (checked)."""
    if spec is None:
        spec = DEFAULT_TEMPLATES
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise FewshotError("no templates given")
        return [check_template(str(t)) for t in spec]
    if spec in ("imagenet", "simple"):
        return _open_clip_set(spec)
    if spec == "photo":
        return ["a photo of a {}."]
    if spec == "name":
        return ["{}"]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FewshotError(f"templates {spec!r}: not a set ({', '.join(TEMPLATE_SETS)}) nor an existing file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise FewshotError(f"cannot read templates file {path}: {err}") from err
    templates = [
        check_template(line.strip(), f"{path} line {i}")
        for i, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not templates:
        raise FewshotError(f"templates file {path} has no templates")
    return templates


def fill(template: str, class_name: str) -> str:
    """The prompt for one class (``str.replace``, so braces in class names are safe)."""
    return template.replace("{}", class_name)
